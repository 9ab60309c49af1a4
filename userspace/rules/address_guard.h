// Which addresses sluice may dial on a workload's behalf when the address was not
// written in the rules: a DNS answer at the gateway, an app's original destination in an
// ALLOW_ANY pass-through at the agent. An allowed name whose DNS answer is 127.0.0.1,
// the cloud metadata address or a cluster range must not turn the dialer into a door to
// the machine or the network it stands in. Pure: the caller supplies its own addresses.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "net_address.h"

namespace sluice {

// Why an address is refused; each is a stable word in log lines and results. Checked in
// this order; the first that applies is the reason.
enum class AddressRefusal {
  Unspecified,  // 0.0.0.0/8, ::
  Loopback,     // 127.0.0.0/8, ::1
  LinkLocal,    // 169.254.0.0/16 (cloud metadata 169.254.169.254), fe80::/10
  Multicast,    // 224.0.0.0/4, ff00::/8
  Broadcast,    // 255.255.255.255
  Reserved,     // 240.0.0.0/4
  DenyCidr,     // a range the rules deny (the cluster's pod and service ranges)
  Private,      // 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, fec0::/10, 64:ff9b:1::/48
  Self,         // an address of the dialing machine (even in an opted-in private range)
};

const char* toString(AddressRefusal refusal);

// A name's answers split by the guard, each list in the answer's order.
struct GuardedAddresses {
  struct Refused {
    IpAddress address;
    AddressRefusal reason;
  };
  std::vector<IpAddress> allowed;
  std::vector<Refused> refused;
};

struct AddressGuardRules {
  CidrSet deny;          // always refused, even inside `allowPrivate`
  CidrSet allowPrivate;  // private ranges that may be dialed (each inside a private range)
};

class AddressGuard {
 public:
  AddressGuard() = default;
  AddressGuard(AddressGuardRules rules, std::vector<IpAddress> selfAddresses)
      : rules_(std::move(rules)), self_(std::move(selfAddresses)) {}

  // Empty if `address` may be dialed. An IPv6 address that carries an IPv4 one (v4-mapped,
  // IPv4-compatible, NAT64 64:ff9b::/96, 6to4, Teredo's client) is also judged by the
  // IPv4 address it would reach.
  std::optional<AddressRefusal> check(const IpAddress& address) const;

  GuardedAddresses filter(const std::vector<IpAddress>& addresses) const;

  const std::vector<IpAddress>& selfAddresses() const { return self_; }

 private:
  std::optional<AddressRefusal> checkV4(uint32_t addressBe) const;
  std::optional<AddressRefusal> checkConfigured(const IpAddress& address) const;

  AddressGuardRules rules_;
  std::vector<IpAddress> self_;
};

// The private ranges `allowPrivate` may open, for messages: "10.0.0.0/8, ...".
std::string privateRangesText();
// True if `cidr` lies inside one private range (so opting it in opens nothing else).
bool insidePrivateRange(const Ipv4Cidr& cidr);
bool insidePrivateRange(const Ipv6Cidr& cidr);

}  // namespace sluice
