#include "net_address.h"

#include <arpa/inet.h>

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

}  // namespace sluice
