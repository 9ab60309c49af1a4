// sluice-gateway: the egress gateway. mTLS in from node agents, TCP out to the host
// named by the SNI, if the rules allow it.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <iostream>

#include "admin_server.h"
#include "certificate_reloader.h"
#include "config.h"
#include "gateway_admin.h"
#include "gateway_server.h"
#include "interface_addresses.h"
#include "log_record.h"
#include "logging.h"
#include "marked_socket.h"
#include "metrics_registry.h"
#include "rules_reloader.h"
#include "signals.h"
#include "spawn.h"
#include "version.h"

namespace po = boost::program_options;
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
  rules->resolver = std::make_unique<DnsResolver>(rules->gateway.dnsServer, rules->gateway.dnsTimeout);
  rules->dnsCache = std::make_unique<DnsCache>(rules->gateway.dnsCacheLifetime);
  rules->guard = makeGuard(rules->gateway);
  rules->version = version;
  rules->config = std::move(config);
  return rules;
}

int run(const po::variables_map& options) {
  std::vector<std::filesystem::path> paths;
  for (const auto& p : options["config"].as<std::vector<std::string>>()) paths.emplace_back(p);
  const Config startConfig = loadConfigFiles(paths);
  auto rules = buildRules(startConfig, 1);
  auto current = rules;

  asio::io_context io(1);
  asio::thread_pool resolverPool(2);
  CertificateReloader certificates(io, rules->gateway.tls, TlsRole::Server, !options.count("no-watch"),
                                   GatewayServer::configureAlpn);
  MetricsRegistry registry;
  GatewayMetrics metrics(registry);
  GatewayServer server(io, resolverPool, rules, certificates);
  server.setReporting(AccessReporter(&metrics));
  server.listen();
  asio::co_spawn(io, server.acceptLoop(), logEscapedException("accept loop"));

  const ReloadPolicy policy{RulesDaemon::Gateway, options.count("allow-empty-rules") > 0};
  RulesReloader reloader(io, paths, !options.count("no-watch"), policy, startConfig, [&](uint64_t next, Config c) {
    auto rules = buildRules(std::move(c), next);
    if (rules->gateway.listen != current->gateway.listen) {
      throw ConfigError("gateway.listen changed: restart the gateway to move its listener");
    }
    certificates.requireSameFiles(rules->gateway.tls, "gateway.tls");
    server.setRules(rules);
    current = rules;
    return "hosts=" + std::to_string(rules->hosts.size());
  });

  AdminServer admin(io, parseAdminAddress(options["admin-address"].as<std::string>()));
  installGatewayAdmin(admin, GatewayAdminContext{&reloader, &certificates, &registry});
  admin.start();

  auto signals = handleSignals(
      io,
      [&] {
        reloader.reload("SIGHUP");
        certificates.reload("SIGHUP");
      },
      [&](int signal) {
        spdlog::info("signal {}: stopping", signal);
        server.stop();
        admin.stop();
        io.stop();
      });

  spdlog::info("gateway ready listen={} admin={} dns={} hosts={} clients={} rules_version={}",
               formatEndpoint(rules->gateway.listen), options["admin-address"].as<std::string>(),
               formatEndpoint(rules->gateway.dnsServer), rules->hosts.size(), rules->gateway.allowedClients.size(),
               reloader.version());
  io.run();
  resolverPool.stop();
  resolverPool.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description description("sluice-gateway: mTLS egress gateway");
  description.add_options()("help,h", "show this help")("version", "print the version and git revision")(
      "config,c", po::value<std::vector<std::string>>()->required()->composing(),
      "rules file (YAML: native and/or Istio resources); repeat to load several together")(
      "no-watch", "reload only on SIGHUP, not when a rules file changes")(
      "allow-empty-rules",
      "accept a reload that leaves no allowed host (refused by default: a file cut short looks so)")(
      "admin-address", po::value<std::string>()->default_value(kDefaultAdminAddress),
      "ADDRESS:PORT of the admin endpoint (/metrics, /healthz, /readyz, /config)")(
      "log-format", po::value<std::string>()->default_value("text"),
      "access records and log lines: text or json (one JSON object per line)")(
      "log-level", po::value<std::string>()->default_value("info"), "trace, debug, info, warn, error");
  po::variables_map options;
  try {
    po::store(po::parse_command_line(argc, argv, description), options);
    if (options.count("version")) {
      std::cout << versionText("sluice-gateway") << "\n";
      return 0;
    }
    if (options.count("help")) {
      std::cout << description << "\n";
      return 0;
    }
    po::notify(options);
    const LogFormat format = parseLogFormat(options["log-format"].as<std::string>());
    parseAdminAddress(options["admin-address"].as<std::string>());
    setupLogging(options["log-level"].as<std::string>());
    configureLogFormat(format);
  } catch (const std::exception& e) {
    std::cerr << "sluice-gateway: " << e.what() << "\n" << description << "\n";
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  try {
    return run(options);
  } catch (const std::exception& e) {
    spdlog::critical("sluice-gateway: {}", e.what());
    return 1;
  }
}
