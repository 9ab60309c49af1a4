// sluice-gateway: the egress gateway. mTLS in from node agents, TCP out to the host
// named by the SNI, if the rules allow it.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "admin_server.h"
#include "certificate_reloader.h"
#include "config.h"
#include "daemon.h"
#include "drain.h"
#include "fd_limits.h"
#include "gateway_admin.h"
#include "gateway_server.h"
#include "interface_addresses.h"
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

// The guard on DNS answers: the rules' ranges, and this gateway's own addresses read now
// (at start and on every reload), its listen address among them.
AddressGuard makeGuard(const GatewayConfig& gateway) {
  std::vector<IpAddress> self = interfaceAddresses();
  const IpAddress listen = IpAddress::fromV4(gateway.listen.addressBe);
  if (gateway.listen.addressBe != 0 && std::find(self.begin(), self.end(), listen) == self.end()) {
    self.push_back(listen);
  }
  std::string list;
  for (const auto& a : self) list += (list.empty() ? "" : ",") + formatIp(a);
  spdlog::info("address guard: own addresses {}; deny {} CIDRs; private CIDRs opted in {}", list,
               gateway.denyCidrs.v4.size() + gateway.denyCidrs.v6.size(),
               gateway.allowPrivateCidrs.v4.size() + gateway.allowPrivateCidrs.v6.size());
  return AddressGuard({gateway.denyCidrs, gateway.allowPrivateCidrs}, std::move(self));
}

std::shared_ptr<const GatewayRules> buildRules(Config config, uint64_t version) {
  for (const auto& warning : config.warnings) spdlog::warn("rules: {}", warning);
  if (!config.gateway) throw ConfigError("no 'gateway' section in the rules files: sluice-gateway needs one");
  auto rules = std::make_shared<GatewayRules>();
  rules->gateway = *config.gateway;
  rules->hosts = config.gatewayMatcher();
  requireSocketMarkPermission(rules->gateway.socketMark, "gateway.socketMark");
  rules->guard = makeGuard(rules->gateway);
  rules->version = version;
  rules->config = std::move(config);
  return rules;
}

int run(const po::variables_map& options) {
  const std::vector<std::filesystem::path> paths = configFiles(options);
  const Config startConfig = loadConfigFiles(paths);
  auto rules = buildRules(startConfig, 1);
  auto current = rules;

  raiseOpenFileLimit("sluice-gateway");
  asio::io_context io(1);  // control: signals, reloads, certificate rotation
  CertificateReloader certificates(io, rules->gateway.tls, TlsRole::Server, !options.count("no-watch"),
                                   GatewayServer::configureAlpn);
  MetricsRegistry registry;
  GatewayMetrics metrics(registry);  // shared by every worker (thread-safe)
  // Streams and tunnels in progress, across the workers (declared before them: they
  // outlive their loops), and what a drain reports.
  ActiveFlows streams, tunnels;
  DrainStatus drainStatus;
  WorkerPool workers(workerThreads(options));
  std::vector<std::unique_ptr<GatewayServer>> servers;
  // One set of caps for every worker (each has its own resolver and DNS cache).
  auto limits = std::make_shared<GatewayLimits>(rules->gateway);
  for (size_t i = 0; i < workers.size(); ++i) {
    servers.push_back(std::make_unique<GatewayServer>(workers.io(i), rules, certificates));
    servers.back()->shareLimits(limits);
    servers.back()->trackFlows(&streams, &tunnels);
    servers.back()->setReporting(AccessReporter(&metrics));
    servers.back()->listen();
    asio::co_spawn(workers.io(i), servers.back()->acceptLoop(), logEscapedException("accept loop"));
  }

  const ReloadPolicy policy{RulesDaemon::Gateway, options.count("allow-empty-rules") > 0};
  RulesReloader reloader(io, paths, !options.count("no-watch"), policy, startConfig, [&](uint64_t next, Config c) {
    auto rules = buildRules(std::move(c), next);
    if (rules->gateway.listen != current->gateway.listen) {
      throw ConfigError("gateway.listen changed: restart the gateway to move its listener");
    }
    certificates.requireSameFiles(rules->gateway.tls, "gateway.tls");
    for (auto& server : servers) server->setRules(rules);  // each applies it on its own loop
    current = rules;
    return "hosts=" + std::to_string(rules->hosts.size());
  });

  AdminServer admin(io, parseAdminAddress(options["admin-address"].as<std::string>()));
  installGatewayAdmin(admin, GatewayAdminContext{&reloader, &certificates, &registry, &drainStatus});
  admin.start();

  // SIGTERM: the listeners close and every tunnel gets GOAWAY (agents move new streams to
  // another gateway), streams finish up to --drain-timeout, the rest are reset, then the
  // gateway exits.
  Drain drain(io, drainTimeout(options), streams, &tunnels, drainStatus,
              {[&] {
                 for (auto& server : servers) server->drain();
               },
               nullptr,
               [&] {
                 spdlog::info("stopping");
                 admin.stop();
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
      "gateway ready listen={} admin={} dns={} hosts={} clients={} rules_version={} workers={} drain_timeout_ms={}",
      formatEndpoint(rules->gateway.listen), options["admin-address"].as<std::string>(),
      formatEndpoint(rules->gateway.dnsServer), rules->hosts.size(), rules->gateway.allowedClients.size(),
      reloader.version(), workers.size(), drainTimeout(options).count());
  trimMemoryPeriodically(io);
  io.run();
  workers.stop();
  workers.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return runDaemon(argc, argv,
                   {"sluice-gateway",
                    "mTLS egress gateway",
                    {},
                    [](const po::variables_map& o) { parseAdminAddress(o["admin-address"].as<std::string>()); },
                    run,
                    60});
}
