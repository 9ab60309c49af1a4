#include "interface_addresses.h"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace sluice {

std::vector<IpAddress> interfaceAddresses() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) throw std::runtime_error(std::string("getifaddrs: ") + std::strerror(errno));
  std::vector<IpAddress> out;
  for (const ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    if (i->ifa_addr->sa_family == AF_INET) {
      out.push_back(IpAddress::fromV4(reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr));
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      Ipv6Address a;
      std::memcpy(a.data(), &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr, a.size());
      out.push_back(IpAddress::fromV6(a));
    }
  }
  freeifaddrs(list);
  return out;
}

}  // namespace sluice
