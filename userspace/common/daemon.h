// What both daemons do around their own work: the shared command line (rules files,
// reload, logging, threads, --help/--version), logging set up before anything else,
// SIGPIPE ignored, and one exit-code convention (2 bad usage, 1 failed to run). One
// place, so sluice-agent and sluice-gateway cannot drift apart.
#pragma once

#include <boost/program_options.hpp>
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
  // Runs until the daemon stops; its return value is the exit code. An exception is
  // logged as critical and exits 1.
  std::function<int(const po::variables_map&)> run;
};

int runDaemon(int argc, char** argv, const DaemonSpec& spec);

// The --config files, in order.
std::vector<std::filesystem::path> configFiles(const po::variables_map& options);
// --threads: the number of worker event loops (0 = one per core).
unsigned workerThreads(const po::variables_map& options);

}  // namespace sluice
