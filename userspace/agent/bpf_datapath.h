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

  // Makes the maps say what `state` says: writes the difference only, config last, so
  // a connect never sees a half-written rule set as enabled.
  void apply(const DatapathState& state);
  void applyRules(const AgentConfig& agent, uint32_t rulesVersion) { apply(desiredDatapath(agent, rulesVersion)); }

  // Takes (reads and removes) the original destination of an accepted client.
  std::optional<sl_orig_dst> takeOriginalDestination(const sl_endpoint& client) const;

 private:
  sluice_bpf* skeleton_ = nullptr;
  TypedMap<__u32, sl_config> config_;
  TypedMap<sl_port_key, __u8> ports_;
  TypedMap<sl_bypass4_key, __u8> bypass4_;
  TypedMap<sl_bypass6_key, __u8> bypass6_;
  TypedMap<sl_endpoint, sl_orig_dst> origDst_;
};

sl_endpoint toKernelEndpoint(const Ipv4Endpoint& endpoint);
Ipv4Endpoint fromKernelEndpoint(const sl_endpoint& endpoint);

}  // namespace sluice
