// Parsing and printing of IPv4 endpoints and CIDRs as they appear in the rules and logs.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

struct Ipv4Endpoint {
  uint32_t addressBe = 0;  // network order, as the kernel and the BPF maps hold it
  uint16_t port = 0;       // host order
  bool operator==(const Ipv4Endpoint&) const = default;
};

struct Ipv4Cidr {
  uint32_t addressBe = 0;
  uint8_t prefixLength = 0;
  bool operator==(const Ipv4Cidr&) const = default;
};

using Ipv6Address = std::array<uint8_t, 16>;

struct Ipv6Cidr {
  Ipv6Address address{};
  uint8_t prefixLength = 0;
  bool operator==(const Ipv6Cidr&) const = default;
};

std::optional<uint32_t> parseIpv4(std::string_view text);
std::optional<Ipv6Address> parseIpv6(std::string_view text);
// "2001:db8::/32"; host bits must be zero.
std::optional<Ipv6Cidr> parseIpv6Cidr(std::string_view text);
std::string formatIpv6(const Ipv6Address& address);
// "198.18.0.1:15001"; the port must be 1..65535.
std::optional<Ipv4Endpoint> parseIpv4Endpoint(std::string_view text);
// "10.0.0.0/8"; host bits must be zero so that a typo is not silently widened.
std::optional<Ipv4Cidr> parseIpv4Cidr(std::string_view text);

std::string formatIpv4(uint32_t addressBe);
std::string formatEndpoint(const Ipv4Endpoint& endpoint);
std::string formatCidr(const Ipv4Cidr& cidr);

}  // namespace sluice
