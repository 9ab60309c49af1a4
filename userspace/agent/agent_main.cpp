// sluice-agent: the node agent. Loads and attaches the BPF redirect, enables the
// configured cgroups and forwards redirected connections to the egress gateway.
#include <spdlog/spdlog.h>

#include "bpf_datapath.h"
#include "certificate_reloader.h"
#include "cgroup_enrollment.h"
#include "config.h"
#include "daemon.h"
#include "forwarder.h"
#include "interface_addresses.h"
#include "kernel_features.h"
#include "logging.h"
#include "marked_socket.h"
#include "rules_reloader.h"
#include "signals.h"
#include "spawn.h"
#include "worker_pool.h"

using namespace sluice;

namespace {

std::shared_ptr<const AgentRules> buildRules(const Config& config, uint64_t version) {
  for (const auto& warning : config.warnings) spdlog::warn("rules: {}", warning);
  if (!config.agent) throw ConfigError("no 'agent' section in the rules files: sluice-agent needs one");
  auto rules = std::make_shared<AgentRules>();
  rules->hosts = config.agentMatcher();
  rules->agent = *config.agent;
  rules->outbound = config.outboundPolicy;
  rules->directGuard = AddressGuard({{}, rules->agent.allowPrivateCidrs}, interfaceAddresses());
  rules->version = version;
  return rules;
}

// Every cgroup the rules name, resolved before anything changes: a missing one refuses
// the whole rule set.
std::vector<std::filesystem::path> resolveCgroups(const std::vector<std::string>& names, const char* field) {
  std::vector<std::filesystem::path> dirs;
  for (const auto& name : names) {
    try {
      dirs.push_back(resolveCgroup(name));
    } catch (const std::exception& e) {
      throw ConfigError(std::string(field) + ": " + e.what());
    }
  }
  return dirs;
}

// agent.cgroups plus the kubelet's pod parent, if the rules ask for it.
std::vector<std::filesystem::path> enrolledCgroups(const AgentConfig& agent) {
  auto dirs = resolveCgroups(agent.cgroups, "agent.cgroups");
  if (agent.kubepodsCgroup.empty()) return dirs;
  try {
    dirs.push_back(agent.kubepodsCgroup == "auto" ? findKubepodsCgroup(cgroup2Mount())
                                                  : resolveCgroup(agent.kubepodsCgroup));
  } catch (const std::exception& e) {
    throw ConfigError(std::string("agent.kubepodsCgroup: ") + e.what());
  }
  return dirs;
}

void enrollCgroups(const PinLayout& pins, const std::vector<std::filesystem::path>& dirs) {
  CgroupEnrollment enrollment(pins);
  for (const auto& dir : dirs) {
    bool added = enrollment.enable(dir);
    spdlog::info("cgroup {} id={} {}", dir.string(), cgroupId(dir), added ? "enabled" : "already enabled");
    for (const auto& foreign : enrollment.foreignPrograms(dir)) spdlog::warn("cgroup {}: {}", dir.string(), foreign);
  }
}

// All or nothing: everything the kernel must take is checked first (map capacities,
// cgroups, the socket mark); then the maps switch in a fail-closed order, and if
// enrolling a cgroup still fails the maps go back to the rule set before.
void installRules(BpfDatapath& datapath, const PinLayout& pins, const AgentRules& rules, uint32_t version) {
  DatapathState next = datapath.desired(rules.agent, version);
  for (const auto& dir : resolveCgroups(rules.agent.exemptCgroups, "agent.exemptCgroups")) {
    next.exempt.insert(cgroupId(dir));
  }
  checkFitsKernelMaps(next);
  auto cgroups = enrolledCgroups(rules.agent);
  requireSocketMarkPermission(rules.agent.socketMark, "agent.socketMark");
  reapRemovedCgroups(pins);
  const DatapathState before = datapath.apply(next);
  try {
    enrollCgroups(pins, cgroups);
  } catch (...) {
    datapath.apply(before);
    throw;
  }
}

int run(const po::variables_map& options) {
  const std::vector<std::filesystem::path> paths = configFiles(options);
  const PinLayout pins{options["pin-dir"].as<std::string>()};
  const Config startConfig = loadConfigFiles(paths);
  auto rules = buildRules(startConfig, 1);
  asio::io_context io(1);  // control: signals, reloads, certificate rotation
  // Before the kernel is touched: an identity the agent could not present fails the start.
  CertificateReloader certificates(io, rules->agent.tls, TlsRole::Client, !options.count("no-watch"));

  spdlog::info("kernel {} has every feature sluice needs (floor: Linux {})", requireKernelFeatures(), kernelFloor());
  BpfDatapath datapath(pins);
  installRules(datapath, pins, *rules, 1);

  WorkerPool workers(workerThreads(options));
  std::vector<std::unique_ptr<Forwarder>> forwarders;
  if (options.count("test-no-socket-mark")) {
    spdlog::warn(
        "--test-no-socket-mark: the agent's sockets carry no mark; only its unenrolled cgroup guards "
        "against a redirect loop");
  }
  for (size_t i = 0; i < workers.size(); ++i) {
    auto& forwarder =
        *forwarders.emplace_back(std::make_unique<Forwarder>(workers.io(i), datapath, rules, certificates));
    if (options.count("test-no-socket-mark")) forwarder.setSocketMark(false);
    forwarder.listen();
    asio::co_spawn(workers.io(i), forwarder.acceptLoop(forwarder.acceptor4()), logEscapedException("accept loop"));
    if (forwarder.acceptor6()) {
      asio::co_spawn(workers.io(i), forwarder.acceptLoop(*forwarder.acceptor6()),
                     logEscapedException("accept loop v6"));
    }
  }

  // New connections take the new rules; established ones keep the rules they started
  // with. A file that does not load changes nothing.
  const ReloadPolicy policy{RulesDaemon::Agent, options.count("allow-empty-rules") > 0};
  RulesReloader reloader(io, paths, !options.count("no-watch"), policy, startConfig, [&](uint64_t next, Config c) {
    auto nextRules = buildRules(c, next);
    if (nextRules->agent.listen != rules->agent.listen || nextRules->agent.listen6 != rules->agent.listen6) {
      throw ConfigError("agent.listen or agent.listen6 changed: restart the agent to move its listeners");
    }
    certificates.requireSameFiles(nextRules->agent.tls, "agent.tls");
    installRules(datapath, pins, *nextRules, static_cast<uint32_t>(next));
    for (size_t i = 0; i < forwarders.size(); ++i) {
      asio::post(workers.io(i), [forwarder = forwarders[i].get(), nextRules] { forwarder->setRules(nextRules); });
    }
    rules = nextRules;
    return "hosts=" + std::to_string(rules->hosts.size()) + " outbound=" + toString(rules->outbound);
  });

  auto signals = handleSignals(
      io,
      [&] {
        reloader.reload("SIGHUP");
        certificates.reload("SIGHUP");
      },
      [&](int signal) {
        spdlog::info("signal {}: stopping; links stay pinned, so enabled cgroups fail closed", signal);
        io.stop();
      });

  workers.start();
  spdlog::info(
      "agent ready listen={} gateway={} hosts={} outbound={} rules_version={} pin_dir={} socket_mark={:#x} "
      "node_netns_cookie={} workers={}",
      formatEndpoint(rules->agent.listen), formatEndpoint(rules->agent.gatewayAddress), rules->hosts.size(),
      toString(rules->outbound), reloader.version(), pins.dir.string(), rules->agent.socketMark,
      datapath.nodeNetnsCookie(), workers.size());
  io.run();
  workers.stop();
  workers.join();
  return 0;
}

void agentOptions(po::options_description& visible, po::options_description& hidden) {
  visible.add_options()("pin-dir", po::value<std::string>()->default_value(kDefaultPinDir.string()),
                        "bpffs directory for pins");
  hidden.add_options()("test-no-socket-mark", "tests of the loop guards only: do not mark the agent's sockets");
}

}  // namespace

int main(int argc, char** argv) {
  return runDaemon(argc, argv,
                   {"sluice-agent", "redirects enabled cgroups' egress TLS through the gateway", agentOptions, run});
}
