// Parsing and printing of IPv4 endpoints and CIDRs as they appear in the rules and logs.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

// One IPv4 or IPv6 address, as a DNS answer gives it and a socket dials it.
struct IpAddress {
  bool isV6 = false;
  uint32_t v4Be = 0;  // when !isV6, network order
  Ipv6Address v6{};   // when isV6
  static IpAddress fromV4(uint32_t addressBe) { return IpAddress{false, addressBe, {}}; }
  static IpAddress fromV6(const Ipv6Address& address) { return IpAddress{true, 0, address}; }
  bool operator==(const IpAddress&) const = default;
};

// IPv4 and IPv6 CIDRs of one rules field (a list may mix both).
struct CidrSet {
  std::vector<Ipv4Cidr> v4;
  std::vector<Ipv6Cidr> v6;
  bool empty() const { return v4.empty() && v6.empty(); }
  bool contains(const IpAddress& address) const;
  bool operator==(const CidrSet&) const = default;
};

bool cidrContains(const Ipv4Cidr& cidr, uint32_t addressBe);
bool cidrContains(const Ipv6Cidr& cidr, const Ipv6Address& address);
// `inner` lies wholly inside `outer`.
bool cidrWithin(const Ipv4Cidr& inner, const Ipv4Cidr& outer);
bool cidrWithin(const Ipv6Cidr& inner, const Ipv6Cidr& outer);

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
std::string formatCidr(const Ipv6Cidr& cidr);
// "198.18.100.10", "::1".
std::string formatIp(const IpAddress& address);

}  // namespace sluice
