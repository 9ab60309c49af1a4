#include "daemon.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <iostream>

#include "admin_address.h"
#include "log_record.h"
#include "logging.h"
#include "version.h"

namespace sluice {

std::vector<std::filesystem::path> configFiles(const po::variables_map& options) {
  std::vector<std::filesystem::path> paths;
  for (const auto& p : options["config"].as<std::vector<std::string>>()) paths.emplace_back(p);
  return paths;
}

unsigned workerThreads(const po::variables_map& options) {
  return options["threads"].as<unsigned>();
}

std::chrono::milliseconds drainTimeout(const po::variables_map& options) {
  return std::chrono::milliseconds(static_cast<int64_t>(options["drain-timeout"].as<double>() * 1000));
}

int runDaemon(int argc, char** argv, const DaemonSpec& spec) {
  po::options_description visible(spec.name + ": " + spec.summary);
  visible.add_options()("help,h", "show this help")("version", "print the version and git revision")(
      "config,c", po::value<std::vector<std::string>>()->required()->composing(),
      "rules file (YAML: native and/or Istio resources); repeat to load several together")(
      "no-watch", "reload only on SIGHUP, not when a rules file changes")(
      "allow-empty-rules",
      "accept a reload that leaves no allowed host (refused by default: a file cut short looks so)")(
      "threads", po::value<unsigned>()->default_value(0),
      "worker event loops, each with its own listener (0: one per core the process may use: its CPU affinity, "
      "capped by a cgroup v2 cpu.max)")(
      "drain-timeout", po::value<double>()->default_value(static_cast<double>(spec.defaultDrainSeconds)),
      "seconds SIGTERM lets flows finish after closing the listeners; then the rest are reset (0: at once; "
      "a second SIGTERM also resets at once)")(
      "admin-address", po::value<std::string>()->default_value(kDefaultAdminAddress),
      "ADDRESS:PORT of the admin endpoint (/metrics, /healthz, /readyz, /config); keep it off pod-reachable "
      "addresses")("log-format", po::value<std::string>()->default_value("text"),
                   "access records and log lines: text or json (one JSON object per line)")(
      "log-level", po::value<std::string>()->default_value("info"), "trace, debug, info, warn, error")(
      "log-queue-lines", po::value<size_t>()->default_value(8192),
      "log lines queued for the writer thread; when stderr is slower, the oldest are dropped and counted "
      "(sluice_log_lines_dropped_total), traffic never waits (0: write synchronously)");
  po::options_description hidden;
  if (spec.addOptions) spec.addOptions(visible, hidden);
  po::options_description all;
  all.add(visible).add(hidden);

  po::variables_map options;
  try {
    po::store(po::parse_command_line(argc, argv, all), options);
    if (options.count("version")) {
      std::cout << versionText(spec.name) << "\n";
      return 0;
    }
    if (options.count("help")) {
      std::cout << visible << "\n";
      return 0;
    }
    po::notify(options);
    const LogFormat format = parseLogFormat(options["log-format"].as<std::string>());
    const double drain = options["drain-timeout"].as<double>();
    if (!(drain >= 0 && drain <= 86400)) throw po::error("--drain-timeout: seconds from 0 to 86400");
    if (spec.validate) spec.validate(options);
    setupLogging(options["log-level"].as<std::string>(), options["log-queue-lines"].as<size_t>());
    configureLogFormat(format);
  } catch (const std::exception& e) {
    std::cerr << spec.name << ": " << e.what() << "\n" << visible << "\n";
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int rc = 1;
  try {
    rc = spec.run(options);
  } catch (const std::exception& e) {
    spdlog::critical("{}: {}", spec.name, e.what());
  }
  shutdownLogging();  // the asynchronous log's last lines reach stderr before exit
  return rc;
}

}  // namespace sluice
