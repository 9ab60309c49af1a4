#include "bpf_datapath.h"

#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <set>
#include <stdexcept>

#include "cgroup_enrollment.h"
#include "sluice_bpf.skel.h"

namespace sluice {
namespace {

int forwardLibbpfLog(enum libbpf_print_level level, const char* format, va_list args) {
  // The verifier's log arrives as one long message: size the buffer to it.
  va_list copy;
  va_copy(copy, args);
  int length = vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  std::string text(length > 0 ? static_cast<size_t>(length) : 0, '\0');
  vsnprintf(text.data(), text.size() + 1, format, args);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  if (level == LIBBPF_WARN) {
    spdlog::warn("libbpf: {}", text);
  } else {
    spdlog::debug("libbpf: {}", text);
  }
  return 0;
}

}  // namespace

sl_endpoint toKernelEndpoint(const Ipv4Endpoint& endpoint) {
  sl_endpoint out{};
  std::memcpy(out.addr, &endpoint.addressBe, sizeof(endpoint.addressBe));
  out.port_be = htons(endpoint.port);
  out.family = SL_FAMILY_INET;
  return out;
}

Ipv4Endpoint fromKernelEndpoint(const sl_endpoint& endpoint) {
  Ipv4Endpoint out;
  std::memcpy(&out.addressBe, endpoint.addr, sizeof(out.addressBe));
  out.port = ntohs(endpoint.port_be);
  return out;
}

void reapRemovedCgroups(const PinLayout& pins) {
  for (uint64_t id : CgroupEnrollment(pins).reapRemoved()) {
    spdlog::info("cgroup id={} is gone: its link pins were removed", id);
  }
}

uint64_t currentNetnsCookie() {
  UniqueFd probe(socket(AF_INET, SOCK_STREAM, 0));
  if (!probe) throw std::runtime_error("socket() for the network namespace cookie: " + errnoText(errno));
  uint64_t cookie = 0;
  socklen_t length = sizeof(cookie);
  if (getsockopt(probe.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &length) != 0 || cookie == 0) {
    throw std::runtime_error("reading this network namespace's cookie (SO_NETNS_COOKIE, kernel 5.14+): " +
                             errnoText(errno));
  }
  return cookie;
}

BpfDatapath::BpfDatapath(const PinLayout& pins) : nodeNetnsCookie_(currentNetnsCookie()) {
  libbpf_set_print(forwardLibbpfLog);
  ensureBpffs(pins.dir);
  std::string pinRoot = pins.dir.string();
  LIBBPF_OPTS(bpf_object_open_opts, options, .pin_root_path = pinRoot.c_str());
  skeleton_ = sluice_bpf__open_opts(&options);
  if (!skeleton_) throw std::runtime_error("opening the BPF object: " + errnoText(errno));
  if (int err = sluice_bpf__load(skeleton_); err != 0) {
    sluice_bpf__destroy(skeleton_);
    throw std::runtime_error("loading the BPF programs (the kernel passed the feature probes): " + errnoText(err) +
                             "; the libbpf messages above say which program or map");
  }
  try {
    std::filesystem::create_directories(pins.dir / "progs");
    for (const auto& hook : kProgramHooks) {
      bpf_program* program = bpf_object__find_program_by_name(skeleton_->obj, hook.name);
      if (!program) throw std::runtime_error(std::string("BPF object has no program ") + hook.name);
      const auto pin = pins.program(hook.name);
      std::filesystem::remove(pin);
      if (int err = bpf_program__pin(program, pin.c_str()); err != 0) {
        throw std::runtime_error("pinning program " + pin.string() + ": " + errnoText(err));
      }
    }
    CgroupEnrollment enrollment(pins);
    reapRemovedCgroups(pins);
    for (const auto& stray : enrollment.strayEntries()) {
      spdlog::warn("{} is not a sluice link directory (a cgroup id): left alone, not adopted", stray.string());
    }
    enrollment.adoptLinks();
    config_ = TypedMap<__u32, sl_config>::borrow(bpf_map__fd(skeleton_->maps.sl_config), "sl_config");
    ports_ = TypedMap<sl_port_key, __u8>::borrow(bpf_map__fd(skeleton_->maps.sl_ports), "sl_ports");
    bypass4_ = TypedMap<sl_bypass4_key, __u8>::borrow(bpf_map__fd(skeleton_->maps.sl_bypass4), "sl_bypass4");
    bypass6_ = TypedMap<sl_bypass6_key, __u8>::borrow(bpf_map__fd(skeleton_->maps.sl_bypass6), "sl_bypass6");
    exempt_ = TypedMap<__u64, __u8>::borrow(bpf_map__fd(skeleton_->maps.sl_exempt), "sl_exempt");
    origDst_ = TypedMap<sl_endpoint, sl_orig_dst>::borrow(bpf_map__fd(skeleton_->maps.sl_orig_dst), "sl_orig_dst");
  } catch (...) {
    sluice_bpf__destroy(skeleton_);
    throw;
  }
}

BpfDatapath::~BpfDatapath() {
  // Pins and links stay: enabled cgroups keep being redirected (and refused while no
  // agent listens) until `sluicectl uninstall`. That is the fail-closed choice.
  sluice_bpf__destroy(skeleton_);
}

DatapathState BpfDatapath::current() const {
  DatapathState state;
  state.config = config_.lookup(0).value_or(sl_config{});
  for (const auto& key : ports_.keys()) state.redirectPorts.insert(key.port);
  for (const auto& key : bypass4_.keys()) state.bypass4.insert({key.prefixlen, key.addr_be});
  for (const auto& key : bypass6_.keys()) {
    Ipv6Address address;
    std::memcpy(address.data(), key.addr, 16);
    state.bypass6.insert({key.prefixlen, address});
  }
  for (const auto& id : exempt_.keys()) state.exempt.insert(id);
  return state;
}

DatapathState BpfDatapath::apply(const DatapathState& state) {
  DatapathState before = current();
  try {
    write(state);
  } catch (const std::exception& e) {
    try {
      write(before);
    } catch (const std::exception& restore) {
      spdlog::critical(
          "restoring the kernel maps after a failed update also failed: {}; the maps hold a mix of "
          "rule sets (never wider than both: no bypass was added before the config)",
          restore.what());
    }
    throw;
  }
  return before;
}

void BpfDatapath::write(const DatapathState& state) {
  // Widen the redirect and narrow the bypass and the exemptions first: while half written, a connect is
  // redirected (and decided by the agent) rather than let through.
  for (uint16_t port : state.redirectPorts) ports_.put(sl_port_key{port, 0}, 1);
  for (const auto& key : bypass4_.keys()) {
    if (!state.bypass4.contains({key.prefixlen, key.addr_be})) bypass4_.erase(key);
  }
  for (const auto& key : bypass6_.keys()) {
    Ipv6Address address;
    std::memcpy(address.data(), key.addr, 16);
    if (!state.bypass6.contains({key.prefixlen, address})) bypass6_.erase(key);
  }
  for (const auto& id : exempt_.keys()) {
    if (!state.exempt.contains(id)) exempt_.erase(id);
  }
  config_.put(0, state.config);
  for (uint64_t id : state.exempt) exempt_.put(id, 1);
  for (const auto& [prefix, address] : state.bypass4) bypass4_.put(sl_bypass4_key{prefix, address}, 1);
  for (const auto& [prefix, address] : state.bypass6) {
    sl_bypass6_key key{prefix, {}};
    std::memcpy(key.addr, address.data(), 16);
    bypass6_.put(key, 1);
  }
  for (const auto& key : ports_.keys()) {
    if (!state.redirectPorts.contains(key.port)) ports_.erase(key);
  }
}

std::optional<sl_orig_dst> BpfDatapath::takeOriginalDestination(const sl_endpoint& client) const {
  return origDst_.take(client);
}

}  // namespace sluice
