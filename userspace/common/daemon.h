// What both daemons do around their own work: the shared command line (rules files,
// reload, logging, threads, --help/--version), logging set up before anything else,
// SIGPIPE ignored, and one exit-code convention (2 bad usage, 1 failed to run). One
// place, so sluice-agent and sluice-gateway cannot drift apart.
#pragma once

#include <boost/program_options.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace sluice {

namespace po = boost::program_options;

struct DaemonSpec {
  std::string name;     // "sluice-agent"
  std::string summary;  // the first line of --help
  // The daemon's own options; `hidden` ones are accepted but not listed in --help
  // (test-only switches).
  std::function<void(po::options_description& visible, po::options_description& hidden)> addOptions;
  // Checks option values beyond their syntax (throws: bad usage, exit 2), before logging.
  std::function<void(const po::variables_map&)> validate;
  // Runs until the daemon stops; its return value is the exit code. An exception is
  // logged as critical and exits 1.
  std::function<int(const po::variables_map&)> run;
  // --drain-timeout's default, seconds: how long SIGTERM lets flows finish.
  unsigned defaultDrainSeconds = 30;
};

int runDaemon(int argc, char** argv, const DaemonSpec& spec);

// The --config files, in order.
std::vector<std::filesystem::path> configFiles(const po::variables_map& options);
// --threads: the number of worker event loops (0 = one per core).
unsigned workerThreads(const po::variables_map& options);
// --drain-timeout: how long a SIGTERM lets flows end before it resets them (0: at once).
std::chrono::milliseconds drainTimeout(const po::variables_map& options);

}  // namespace sluice
