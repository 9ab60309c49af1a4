// IpAddress to and from Asio's address type, for the sockets that dial it.
#pragma once

#include <arpa/inet.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <string>

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

// "198.18.1.2:443", "[2001:db8::2]:443".
inline std::string formatEndpoint(const boost::asio::ip::tcp::endpoint& endpoint) {
  const auto& a = endpoint.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(endpoint.port());
}

}  // namespace sluice
