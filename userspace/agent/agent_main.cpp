// sluice-agent: the node agent. Loads and attaches the BPF redirect, enables the
// configured cgroups and forwards redirected connections to the egress gateway.
#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include "admin_server.h"
#include "agent_admin.h"
#include "bpf_datapath.h"
#include "certificate_reloader.h"
#include "cgroup_enrollment.h"
#include "config.h"
#include "daemon.h"
#include "drain.h"
#include "fd_limits.h"
#include "flow_report.h"
#include "forwarder.h"
#include "gateway_health.h"
#include "gateway_names.h"
#include "interface_addresses.h"
#include "kernel_features.h"
#include "log_record.h"
#include "logging.h"
#include "marked_socket.h"
#include "memory_trim.h"
#include "metrics_registry.h"
#include "rules_reloader.h"
#include "signals.h"
#include "spawn.h"
#include "worker_pool.h"

using namespace sluice;

namespace {

// "a:15443,gw.example:15443": names as configured (they resolve later, see gateway_names).
std::string gatewayList(const std::vector<GatewayTarget>& gateways) {
  std::string out;
  for (const auto& g : gateways) out += (out.empty() ? "" : ",") + formatGatewayTarget(g);
  return out;
}

// Each relayed connection holds two descriptors (the app's and the tunnel's): the cap on
// connections is never more than the open-file limit leaves room for, so the cap, not
// EMFILE, is what refuses first.
uint32_t fdBoundedCap(uint32_t configured, uint64_t softLimit, size_t openNow) {
  constexpr uint64_t kReserve = 32;  // reloads, certificates, the BPF objects of a reload
  uint64_t room = softLimit > openNow + kReserve ? (softLimit - openNow - kReserve) / 2 : 1;
  return static_cast<uint32_t>(std::max<uint64_t>(1, std::min<uint64_t>(configured, room)));
}

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
// enrolling a cgroup still fails the maps go back to the rule set before. Returns the
// cgroups enrolled.
std::vector<std::filesystem::path> installRules(BpfDatapath& datapath, const PinLayout& pins, const AgentRules& rules,
                                                uint32_t version, const GatewayAddresses& resolvedGateways) {
  DatapathState next = datapath.desired(rules.agent, version, resolvedGateways);
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
  return cgroups;
}

tcp::endpoint gatewayEndpoint(const AgentConfig& agent) {
  return tcp::endpoint(asio::ip::address_v4(ntohl(agent.gatewayAddress.addressBe)), agent.gatewayAddress.port);
}

int run(const po::variables_map& options) {
  const std::vector<std::filesystem::path> paths = configFiles(options);
  const PinLayout pins{options["pin-dir"].as<std::string>()};
  const Config startConfig = loadConfigFiles(paths);
  auto rules = buildRules(startConfig, 1);
  const OpenFileLimit files = raiseOpenFileLimit("sluice-agent");
  asio::io_context io(1);  // control: signals, reloads, certificate rotation
  // Before the kernel is touched: an identity the agent could not present fails the start.
  CertificateReloader certificates(io, rules->agent.tls, TlsRole::Client, !options.count("no-watch"));

  spdlog::info("kernel {} has every feature sluice needs (floor: Linux {})", requireKernelFeatures(), kernelFloor());
  BpfDatapath datapath(pins);
  std::vector<std::filesystem::path> enrolled = installRules(datapath, pins, *rules, 1, {});
  uint32_t rulesVersion = 1;
  // Gateways given as names: their addresses join the kernel's bypass as they resolve
  // (every agent.gateway.resolveIntervalMs), all or nothing like a reload, and then go to
  // every worker's tunnel pool (below).
  // With only names listed, the readiness probe has no address until they resolve.
  GatewayHealth* probeOfNames = nullptr;
  GatewayNames gatewayNames(io, [&](const GatewayAddresses& resolved) {
    try {
      enrolled = installRules(datapath, pins, *rules, rulesVersion, resolved);
      if (probeOfNames && rules->agent.gatewayAddress.addressBe == 0 && !resolved.v4.empty() &&
          !rules->agent.gateways.empty()) {
        probeOfNames->setTarget(
            tcp::endpoint(asio::ip::address_v4(ntohl(*resolved.v4.begin())), rules->agent.gateways.front().port),
            options.count("test-no-socket-mark") ? 0 : rules->agent.socketMark);
      }
      return true;
    } catch (const std::exception& e) {
      spdlog::error("gateway names: the bypass of the resolved gateway addresses was not applied: {}", e.what());
      return false;
    }
  });
  gatewayNames.setTargets(rules->agent.gateways, rules->agent.gatewayResolveInterval);

  // Every flow in progress, across the workers (declared before them: it outlives their
  // loops), and what a drain reports.
  ActiveFlows flows, tunnels;
  DrainStatus drainStatus;
  WorkerPool workers(workerThreads(options));
  std::vector<std::unique_ptr<Forwarder>> forwarders;
  // One set of caps for every worker: a pod's share does not depend on which loop the
  // kernel hands its connections to.
  auto limits = std::make_shared<ConnectionLimits>(rules->agent.maxConnections, rules->agent.maxConnectionsPerPod);
  const bool markSockets = !options.count("test-no-socket-mark");
  // Metrics and gateway health are shared by every worker (both thread-safe); the admin
  // endpoint serves them from this control thread.
  MetricsRegistry registry;
  AgentMetrics metrics(registry);
  GatewayHealth health(io, gatewayEndpoint(rules->agent), markSockets ? rules->agent.socketMark : 0);
  probeOfNames = &health;
  if (!markSockets) {
    spdlog::warn(
        "--test-no-socket-mark: the agent's sockets carry no mark; only its unenrolled cgroup guards "
        "against a redirect loop");
  }
  for (size_t i = 0; i < workers.size(); ++i) {
    auto& forwarder =
        *forwarders.emplace_back(std::make_unique<Forwarder>(workers.io(i), datapath, rules, certificates));
    forwarder.shareLimits(limits);
    forwarder.trackFlows(&flows, &tunnels);
    forwarder.setReporting(FlowReporter(&metrics), &health);
    if (options.count("test-no-socket-mark")) forwarder.setSocketMark(false);
    forwarder.listen();
    asio::co_spawn(workers.io(i), forwarder.acceptLoop(forwarder.acceptor4()), logEscapedException("accept loop"));
    if (forwarder.acceptor6()) {
      asio::co_spawn(workers.io(i), forwarder.acceptLoop(*forwarder.acceptor6()),
                     logEscapedException("accept loop v6"));
    }
  }

  const size_t openAtStart = openFileCount();
  auto applyCaps = [&](const AgentConfig& agent) {
    uint32_t cap = fdBoundedCap(agent.maxConnections, files.soft, openAtStart);
    if (cap < agent.maxConnections) {
      spdlog::warn("connection cap {} (agent.maxConnections {} does not fit the open-file limit {}; {} open now)", cap,
                   agent.maxConnections, files.soft, openAtStart);
    }
    limits->setCaps(cap, agent.maxConnectionsPerPod);
    spdlog::info("connection caps: total={} per_pod={}", cap, agent.maxConnectionsPerPod);
  };
  applyCaps(rules->agent);

  // New connections take the new rules; established ones keep the rules they started
  // with. A file that does not load changes nothing.
  const ReloadPolicy policy{RulesDaemon::Agent, options.count("allow-empty-rules") > 0};
  RulesReloader reloader(io, paths, !options.count("no-watch"), policy, startConfig, [&](uint64_t next, Config c) {
    auto nextRules = buildRules(c, next);
    if (nextRules->agent.listen != rules->agent.listen || nextRules->agent.listen6 != rules->agent.listen6) {
      throw ConfigError("agent.listen or agent.listen6 changed: restart the agent to move its listeners");
    }
    certificates.requireSameFiles(nextRules->agent.tls, "agent.tls");
    enrolled = installRules(datapath, pins, *nextRules, static_cast<uint32_t>(next), gatewayNames.current());
    rulesVersion = static_cast<uint32_t>(next);
    for (size_t i = 0; i < forwarders.size(); ++i) {
      asio::post(workers.io(i), [forwarder = forwarders[i].get(), nextRules] { forwarder->setRules(nextRules); });
    }
    applyCaps(nextRules->agent);
    health.setTarget(gatewayEndpoint(nextRules->agent), markSockets ? nextRules->agent.socketMark : 0);
    rules = nextRules;
    gatewayNames.setTargets(rules->agent.gateways, rules->agent.gatewayResolveInterval);
    return "hosts=" + std::to_string(rules->hosts.size()) + " outbound=" + toString(rules->outbound);
  });

  // The admin endpoint: on this (control) thread, never on a pod-reachable address by
  // default (the node IP of a hostNetwork agent is reachable from pods).
  AdminServer admin(io, parseAdminAddress(options["admin-address"].as<std::string>()));
  installAgentAdmin(admin, AgentAdminContext{pins, &reloader, &certificates, &health, &registry,
                                             [&enrolled] { return enrolled; }, &drainStatus});
  admin.start();
  health.start();
  gatewayNames.onResolved([&](const TunnelPool::ResolvedNames& names) {
    for (size_t i = 0; i < forwarders.size(); ++i) {
      asio::post(workers.io(i), [forwarder = forwarders[i].get(), names] { forwarder->setResolvedGateways(names); });
    }
  });
  gatewayNames.start();

  // SIGTERM: the listeners close (the pinned programs stay: pods' connects to redirected
  // ports are refused here, never sent around the agent), flows finish up to
  // --drain-timeout, the rest are reset; then the tunnels close (GOAWAY) and the agent exits.
  Drain drain(io, drainTimeout(options), flows, &tunnels, drainStatus,
              {[&] {
                 for (size_t i = 0; i < forwarders.size(); ++i) {
                   asio::post(workers.io(i), [forwarder = forwarders[i].get()] { forwarder->stopAccepting(); });
                 }
               },
               [&] {
                 for (size_t i = 0; i < forwarders.size(); ++i) {
                   asio::post(workers.io(i), [forwarder = forwarders[i].get()] { forwarder->closeTunnels(); });
                 }
               },
               [&] {
                 spdlog::info("stopping; links stay pinned, so enabled cgroups fail closed");
                 admin.stop();
                 health.stop();
                 gatewayNames.stop();
                 io.stop();
               }});
  auto signals = handleSignals(
      io,
      [&] {
        reloader.reload("SIGHUP");
        certificates.reload("SIGHUP");
      },
      [&](int signal) { drain.onSignal(signal); });

  workers.start();
  spdlog::info(
      "agent ready listen={} admin={} gateway={} hosts={} outbound={} rules_version={} pin_dir={} "
      "socket_mark={:#x} node_netns_cookie={} workers={} drain_timeout_ms={}",
      formatEndpoint(rules->agent.listen), options["admin-address"].as<std::string>(),
      gatewayList(rules->agent.gateways), rules->hosts.size(), toString(rules->outbound), reloader.version(),
      pins.dir.string(), rules->agent.socketMark, datapath.nodeNetnsCookie(), workers.size(),
      drainTimeout(options).count());
  trimMemoryPeriodically(io);
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
                   {"sluice-agent", "redirects enabled cgroups' egress TLS through the gateway", agentOptions,
                    [](const po::variables_map& o) { parseAdminAddress(o["admin-address"].as<std::string>()); }, run});
}
