#include "net_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

namespace sluice {

std::optional<uint32_t> parseIpv4(std::string_view text) {
  std::string copy(text);
  in_addr addr{};
  if (inet_pton(AF_INET, copy.c_str(), &addr) != 1) return std::nullopt;
  return addr.s_addr;
}

std::optional<Ipv6Address> parseIpv6(std::string_view text) {
  std::string copy(text);
  Ipv6Address out{};
  if (inet_pton(AF_INET6, copy.c_str(), out.data()) != 1) return std::nullopt;
  return out;
}

std::string formatIpv6(const Ipv6Address& address) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, address.data(), buf, sizeof(buf));
  return buf;
}

static std::optional<uint32_t> parseNumber(std::string_view text, uint32_t max) {
  uint32_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty() || value > max) {
    return std::nullopt;
  }
  return value;
}

std::optional<Ipv4Endpoint> parseIpv4Endpoint(std::string_view text) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto address = parseIpv4(text.substr(0, colon));
  auto port = parseNumber(text.substr(colon + 1), 65535);
  if (!address || !port || *port == 0) return std::nullopt;
  return Ipv4Endpoint{*address, static_cast<uint16_t>(*port)};
}

std::optional<Ipv4Cidr> parseIpv4Cidr(std::string_view text) {
  auto slash = text.find('/');
  auto address = parseIpv4(text.substr(0, slash));
  if (!address) return std::nullopt;
  uint32_t prefix = 32;
  if (slash != std::string_view::npos) {
    auto parsed = parseNumber(text.substr(slash + 1), 32);
    if (!parsed) return std::nullopt;
    prefix = *parsed;
  }
  uint32_t hostMask = prefix == 32 ? 0 : (0xffffffffu >> prefix);
  if ((ntohl(*address) & hostMask) != 0) return std::nullopt;
  return Ipv4Cidr{*address, static_cast<uint8_t>(prefix)};
}

std::optional<Ipv6Cidr> parseIpv6Cidr(std::string_view text) {
  auto slash = text.find('/');
  auto address = parseIpv6(text.substr(0, slash));
  if (!address) return std::nullopt;
  uint32_t prefix = 128;
  if (slash != std::string_view::npos) {
    auto parsed = parseNumber(text.substr(slash + 1), 128);
    if (!parsed) return std::nullopt;
    prefix = *parsed;
  }
  for (uint32_t bit = prefix; bit < 128; ++bit) {
    if ((*address)[bit / 8] & (0x80 >> (bit % 8))) return std::nullopt;
  }
  return Ipv6Cidr{*address, static_cast<uint8_t>(prefix)};
}

std::string formatIpv4(uint32_t addressBe) {
  char buf[INET_ADDRSTRLEN] = {};
  in_addr addr{addressBe};
  inet_ntop(AF_INET, &addr, buf, sizeof(buf));
  return buf;
}

std::string formatEndpoint(const Ipv4Endpoint& endpoint) {
  return formatIpv4(endpoint.addressBe) + ":" + std::to_string(endpoint.port);
}

std::string formatCidr(const Ipv4Cidr& cidr) {
  return formatIpv4(cidr.addressBe) + "/" + std::to_string(cidr.prefixLength);
}

std::string formatCidr(const Ipv6Cidr& cidr) {
  return formatIpv6(cidr.address) + "/" + std::to_string(cidr.prefixLength);
}

std::string formatIp(const IpAddress& address) {
  return address.isV6 ? formatIpv6(address.v6) : formatIpv4(address.v4Be);
}

bool cidrContains(const Ipv4Cidr& cidr, uint32_t addressBe) {
  uint32_t mask = cidr.prefixLength == 0 ? 0 : 0xffffffffu << (32 - cidr.prefixLength);
  return (ntohl(addressBe) & mask) == (ntohl(cidr.addressBe) & mask);
}

bool cidrContains(const Ipv6Cidr& cidr, const Ipv6Address& address) {
  for (uint32_t bit = 0; bit < cidr.prefixLength; bit += 8) {
    uint32_t bits = std::min<uint32_t>(8, cidr.prefixLength - bit);
    auto mask = static_cast<uint8_t>(0xff00 >> bits);
    if ((address[bit / 8] & mask) != (cidr.address[bit / 8] & mask)) return false;
  }
  return true;
}

bool cidrWithin(const Ipv4Cidr& inner, const Ipv4Cidr& outer) {
  return inner.prefixLength >= outer.prefixLength && cidrContains(outer, inner.addressBe);
}

bool cidrWithin(const Ipv6Cidr& inner, const Ipv6Cidr& outer) {
  return inner.prefixLength >= outer.prefixLength && cidrContains(outer, inner.address);
}

bool CidrSet::contains(const IpAddress& address) const {
  if (address.isV6) {
    for (const auto& cidr : v6)
      if (cidrContains(cidr, address.v6)) return true;
    return false;
  }
  for (const auto& cidr : v4)
    if (cidrContains(cidr, address.v4Be)) return true;
  return false;
}

}  // namespace sluice
