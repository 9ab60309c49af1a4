// sluice-agent: the node agent. Loads and attaches the BPF redirect, enables the
// configured cgroups and forwards redirected connections to the egress gateway.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <boost/program_options.hpp>
#include <iostream>

#include "bpf_datapath.h"
#include "cgroup_enrollment.h"
#include "config.h"
#include "forwarder.h"
#include "logging.h"
#include "spawn.h"

namespace po = boost::program_options;
using namespace sluice;

namespace {

std::shared_ptr<const AgentRules> buildRules(const std::filesystem::path& path, uint64_t version) {
  Config config = loadConfigFile(path);
  if (!config.agent) throw ConfigError(path.string() + ": no 'agent' section: sluice-agent needs one");
  auto rules = std::make_shared<AgentRules>();
  rules->hosts = config.hostMatcher();
  rules->agent = *config.agent;
  rules->gatewayTls = makeMeshTlsContext(rules->agent.tls, TlsRole::Client);
  rules->version = version;
  return rules;
}

void enrollCgroups(const PinLayout& pins, const AgentConfig& agent) {
  CgroupEnrollment enrollment(pins);
  for (const auto& name : agent.cgroups) {
    auto dir = resolveCgroup(name);
    bool added = enrollment.enable(dir);
    spdlog::info("cgroup {} id={} {}", dir.string(), cgroupId(dir), added ? "enabled" : "already enabled");
  }
}

int run(const po::variables_map& options) {
  const std::filesystem::path configPath = options["config"].as<std::string>();
  const PinLayout pins{options["pin-dir"].as<std::string>()};
  uint64_t version = 1;
  auto rules = buildRules(configPath, version);

  BpfDatapath datapath(pins);
  datapath.applyRules(rules->agent);
  enrollCgroups(pins, rules->agent);

  asio::io_context io(1);
  Forwarder forwarder(io, datapath, rules);
  forwarder.listen();
  asio::co_spawn(io, forwarder.acceptLoop(), logEscapedException("accept loop"));

  asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> onSignal = [&](const boost::system::error_code& ec,
                                                                            int signal) {
    if (ec) return;
    if (signal == SIGHUP) {
      try {
        auto next = buildRules(configPath, version + 1);
        datapath.applyRules(next->agent);
        enrollCgroups(pins, next->agent);
        forwarder.setRules(next);
        version = next->version;
        spdlog::info("rules reloaded version={} hosts={}", version, next->hosts.size());
      } catch (const std::exception& e) {
        spdlog::error("reload refused, keeping rules version={}: {}", version, e.what());
      }
      signals.async_wait(onSignal);
      return;
    }
    spdlog::info("signal {}: stopping; links stay pinned, so enabled cgroups fail closed", signal);
    forwarder.stop();
    io.stop();
  };
  signals.async_wait(onSignal);

  spdlog::info("agent ready listen={} gateway={} hosts={} rules_version={} pin_dir={}",
               formatEndpoint(rules->agent.listen), formatEndpoint(rules->agent.gatewayAddress), rules->hosts.size(),
               version, pins.dir.string());
  io.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description description("sluice-agent: redirects enabled cgroups' egress TLS through the gateway");
  description.add_options()("help,h", "show this help")(
      "config,c", po::value<std::string>()->required(), "rules file (YAML)")(
      "pin-dir", po::value<std::string>()->default_value(kDefaultPinDir.string()), "bpffs directory for pins")(
      "log-level", po::value<std::string>()->default_value("info"), "trace, debug, info, warn, error");
  po::variables_map options;
  try {
    po::store(po::parse_command_line(argc, argv, description), options);
    if (options.count("help")) {
      std::cout << description << "\n";
      return 0;
    }
    po::notify(options);
    setupLogging(options["log-level"].as<std::string>());
  } catch (const std::exception& e) {
    std::cerr << "sluice-agent: " << e.what() << "\n" << description << "\n";
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  try {
    return run(options);
  } catch (const std::exception& e) {
    spdlog::critical("sluice-agent: {}", e.what());
    return 1;
  }
}
