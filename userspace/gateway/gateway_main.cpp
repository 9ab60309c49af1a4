// sluice-gateway: the egress gateway. mTLS in from node agents, TCP out to the host
// named by the SNI, if the rules allow it.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <boost/program_options.hpp>
#include <iostream>

#include "config.h"
#include "gateway_server.h"
#include "logging.h"
#include "marked_socket.h"
#include "rules_reloader.h"
#include "signals.h"
#include "spawn.h"
#include "version.h"

namespace po = boost::program_options;
using namespace sluice;

namespace {

std::shared_ptr<const GatewayRules> buildRules(const std::vector<std::filesystem::path>& paths, uint64_t version) {
  Config config = loadConfigFiles(paths);
  for (const auto& warning : config.warnings) spdlog::warn("rules: {}", warning);
  if (!config.gateway) throw ConfigError("no 'gateway' section in the rules files: sluice-gateway needs one");
  auto rules = std::make_shared<GatewayRules>();
  rules->gateway = *config.gateway;
  rules->hosts = config.gatewayMatcher();
  requireSocketMarkPermission(rules->gateway.socketMark, "gateway.socketMark");
  rules->serverTls = makeMeshTlsContext(rules->gateway.tls, TlsRole::Server);
  GatewayServer::configureAlpn(rules->serverTls.get());
  rules->resolver = std::make_unique<DnsResolver>(rules->gateway.dnsServer, rules->gateway.dnsTimeout);
  rules->dnsCache = std::make_unique<DnsCache>(rules->gateway.dnsCacheLifetime);
  rules->version = version;
  rules->config = std::move(config);
  return rules;
}

int run(const po::variables_map& options) {
  std::vector<std::filesystem::path> paths;
  for (const auto& p : options["config"].as<std::vector<std::string>>()) paths.emplace_back(p);
  auto rules = buildRules(paths, 1);
  auto current = rules;

  asio::io_context io(1);
  asio::thread_pool resolverPool(2);
  GatewayServer server(io, resolverPool, rules);
  server.listen();
  asio::co_spawn(io, server.acceptLoop(), logEscapedException("accept loop"));

  RulesReloader reloader(io, paths, !options.count("no-watch"), [&](uint64_t next) {
    auto rules = buildRules(paths, next);
    if (rules->gateway.listen != current->gateway.listen) {
      throw ConfigError("gateway.listen changed: restart the gateway to move its listener");
    }
    server.setRules(rules);
    current = rules;
    return "hosts=" + std::to_string(rules->hosts.size());
  });

  auto signals = handleSignals(
      io, [&] { reloader.reload("SIGHUP"); },
      [&](int signal) {
        spdlog::info("signal {}: stopping", signal);
        server.stop();
        io.stop();
      });

  spdlog::info("gateway ready listen={} dns={} hosts={} clients={} rules_version={}",
               formatEndpoint(rules->gateway.listen), formatEndpoint(rules->gateway.dnsServer), rules->hosts.size(),
               rules->gateway.allowedClients.size(), reloader.version());
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
    setupLogging(options["log-level"].as<std::string>());
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
