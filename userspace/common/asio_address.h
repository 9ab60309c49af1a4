// IpAddress to and from Asio's address type, for the sockets that dial it.
#pragma once

#include <arpa/inet.h>

#include <boost/asio/ip/address.hpp>

#include "net_address.h"

namespace sluice {

inline boost::asio::ip::address toAsio(const IpAddress& address) {
  if (address.isV6) return boost::asio::ip::address_v6(address.v6);
  return boost::asio::ip::address_v4(ntohl(address.v4Be));
}

inline IpAddress fromAsio(const boost::asio::ip::address& address) {
  if (address.is_v6()) return IpAddress::fromV6(address.to_v6().to_bytes());
  return IpAddress::fromV4(htonl(address.to_v4().to_uint()));
}

}  // namespace sluice
