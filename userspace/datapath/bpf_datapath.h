// The loaded BPF object: programs pinned for enrollment, maps filled from the rules.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "bpf_pins.h"
#include "config.h"
#include "datapath_state.h"
#include "sluice_abi.h"
#include "typed_map.h"

struct sluice_bpf;

namespace sluice {

class BpfDatapath {
 public:
  // Opens the skeleton, reusing maps already pinned under `pins.dir` (an agent restart
  // keeps flows and counters), loads and pins the programs, and re-points existing
  // cgroup links at them. Throws with the reason.
  explicit BpfDatapath(const PinLayout& pins);
  ~BpfDatapath();
  BpfDatapath(const BpfDatapath&) = delete;
  BpfDatapath& operator=(const BpfDatapath&) = delete;

  // Makes the maps say what `state` says, writing the difference in an order that never
  // fails open: redirected ports are added and bypass entries removed before the config
  // flips, bypass entries added and ports removed after. All or nothing: if a write
  // fails, the state before is written back (in the same order) and the error thrown.
  // Returns the state it replaced, for a caller that must undo it later.
  DatapathState apply(const DatapathState& state);
  DatapathState desired(const AgentConfig& agent, uint32_t rulesVersion, const GatewayAddresses& resolved = {}) const {
    return desiredDatapath(agent, rulesVersion, nodeNetnsCookie_, resolved);
  }
  void applyRules(const AgentConfig& agent, uint32_t rulesVersion) { apply(desired(agent, rulesVersion)); }
  // What the maps hold now.
  DatapathState current() const;
  // The agent's own network namespace: the one where its socket mark exempts a socket.
  uint64_t nodeNetnsCookie() const { return nodeNetnsCookie_; }

  // Takes (reads and removes) the original destination of an accepted client.
  std::optional<sl_orig_dst> takeOriginalDestination(const sl_endpoint& client) const;

 private:
  void write(const DatapathState& state);

  sluice_bpf* skeleton_ = nullptr;
  uint64_t nodeNetnsCookie_ = 0;
  TypedMap<__u32, sl_config> config_;
  TypedMap<sl_port_key, __u8> ports_;
  TypedMap<sl_bypass4_key, __u8> bypass4_;
  TypedMap<sl_bypass6_key, __u8> bypass6_;
  TypedMap<__u64, __u8> exempt_;
  TypedMap<sl_endpoint, sl_orig_dst> origDst_;
};

// Removes (and logs) the link pins of cgroups that no longer exist.
void reapRemovedCgroups(const PinLayout& pins);

// The cookie of the calling thread's network namespace (SO_NETNS_COOKIE, kernel 5.14+),
// the value bpf_get_netns_cookie() gives the hooks for sockets in that namespace.
uint64_t currentNetnsCookie();

sl_endpoint toKernelEndpoint(const Ipv4Endpoint& endpoint);
Ipv4Endpoint fromKernelEndpoint(const sl_endpoint& endpoint);

}  // namespace sluice
