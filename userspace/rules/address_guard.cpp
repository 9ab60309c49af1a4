#include "address_guard.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace sluice {
namespace {

Ipv4Cidr v4(const char* text) {
  return *parseIpv4Cidr(text);
}
Ipv6Cidr v6(const char* text) {
  return *parseIpv6Cidr(text);
}

struct Ranges {
  // fec0::/10 is the deprecated site-local range; 64:ff9b:1::/48 is local-use NAT64
  // (RFC 8215), whose IPv4 position is chosen by each site, so it cannot be looked into.
  CidrSet privateRanges{{v4("10.0.0.0/8"), v4("172.16.0.0/12"), v4("192.168.0.0/16"), v4("100.64.0.0/10")},
                        {v6("fc00::/7"), v6("fec0::/10"), v6("64:ff9b:1::/48")}};
  Ipv6Cidr mapped = v6("::ffff:0:0/96");
  Ipv6Cidr compatible = v6("::/96");
  Ipv6Cidr nat64 = v6("64:ff9b::/96");
  Ipv6Cidr sixToFour = v6("2002::/16");
  Ipv6Cidr teredo = v6("2001::/32");
  Ipv6Cidr linkLocal = v6("fe80::/10");
  Ipv6Cidr multicast = v6("ff00::/8");
};

const Ranges& ranges() {
  static const Ranges r;
  return r;
}

uint32_t bytesAt(const Ipv6Address& a, size_t offset) {
  uint32_t be;
  std::memcpy(&be, a.data() + offset, sizeof(be));
  return be;
}

// The IPv4 address an IPv6 one leads to, for the forms that carry one.
std::optional<uint32_t> embeddedIpv4(const Ipv6Address& a) {
  const Ranges& r = ranges();
  if (cidrContains(r.mapped, a) || cidrContains(r.compatible, a) || cidrContains(r.nat64, a)) return bytesAt(a, 12);
  if (cidrContains(r.sixToFour, a)) return bytesAt(a, 2);
  if (cidrContains(r.teredo, a)) return ~bytesAt(a, 12);  // the client's address, inverted
  return std::nullopt;
}

}  // namespace

const char* toString(AddressRefusal refusal) {
  switch (refusal) {
    case AddressRefusal::Unspecified:
      return "unspecified";
    case AddressRefusal::Loopback:
      return "loopback";
    case AddressRefusal::LinkLocal:
      return "link-local";
    case AddressRefusal::Multicast:
      return "multicast";
    case AddressRefusal::Broadcast:
      return "broadcast";
    case AddressRefusal::Reserved:
      return "reserved";
    case AddressRefusal::Self:
      return "self";
    case AddressRefusal::DenyCidr:
      return "deny-cidr";
    case AddressRefusal::Private:
      return "private";
  }
  return "?";
}

std::optional<AddressRefusal> AddressGuard::checkV4(uint32_t addressBe) const {
  const uint32_t a = ntohl(addressBe);
  if ((a >> 24) == 0) return AddressRefusal::Unspecified;
  if ((a >> 24) == 127) return AddressRefusal::Loopback;
  if ((a >> 16) == 0xa9fe) return AddressRefusal::LinkLocal;
  if ((a >> 28) == 0xe) return AddressRefusal::Multicast;
  if (a == 0xffffffffu) return AddressRefusal::Broadcast;
  if ((a >> 28) == 0xf) return AddressRefusal::Reserved;
  return checkConfigured(IpAddress::fromV4(addressBe));
}

// What the rules and this machine decide, after the fixed classes.
std::optional<AddressRefusal> AddressGuard::checkConfigured(const IpAddress& address) const {
  if (rules_.deny.contains(address)) return AddressRefusal::DenyCidr;
  if (ranges().privateRanges.contains(address) && !rules_.allowPrivate.contains(address)) {
    return AddressRefusal::Private;
  }
  if (std::find(self_.begin(), self_.end(), address) != self_.end()) return AddressRefusal::Self;
  return std::nullopt;
}

std::optional<AddressRefusal> AddressGuard::check(const IpAddress& address) const {
  if (!address.isV6) return checkV4(address.v4Be);
  const Ipv6Address& a = address.v6;
  static const Ipv6Address unspecified{}, loopback{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  if (a == unspecified) return AddressRefusal::Unspecified;
  if (a == loopback) return AddressRefusal::Loopback;
  if (auto embedded = embeddedIpv4(a)) {
    if (auto refusal = checkV4(*embedded)) return refusal;
  }
  const Ranges& r = ranges();
  if (cidrContains(r.linkLocal, a)) return AddressRefusal::LinkLocal;
  if (cidrContains(r.multicast, a)) return AddressRefusal::Multicast;
  return checkConfigured(address);
}

GuardedAddresses AddressGuard::filter(const std::vector<IpAddress>& addresses) const {
  GuardedAddresses out;
  for (const auto& address : addresses) {
    if (auto refusal = check(address)) {
      out.refused.push_back({address, *refusal});
    } else {
      out.allowed.push_back(address);
    }
  }
  return out;
}

std::string privateRangesText() {
  const CidrSet& ranges = sluice::ranges().privateRanges;
  std::string out;
  for (const auto& c : ranges.v4) out += (out.empty() ? "" : ", ") + formatCidr(c);
  for (const auto& c : ranges.v6) out += ", " + formatCidr(c);
  return out;
}

bool insidePrivateRange(const Ipv4Cidr& cidr) {
  const auto& ranges = sluice::ranges().privateRanges.v4;
  return std::any_of(ranges.begin(), ranges.end(), [&](const Ipv4Cidr& range) { return cidrWithin(cidr, range); });
}

bool insidePrivateRange(const Ipv6Cidr& cidr) {
  const auto& ranges = sluice::ranges().privateRanges.v6;
  return std::any_of(ranges.begin(), ranges.end(), [&](const Ipv6Cidr& range) { return cidrWithin(cidr, range); });
}

}  // namespace sluice
