// sluicectl: the operator's view of a node: status, per-cgroup enablement, rules
// validation, and removal of everything sluice pinned.
#include <arpa/inet.h>
#include <bpf/libbpf.h>

#include <boost/program_options.hpp>
#include <iostream>
#include <numeric>

#include "bpf_pins.h"
#include "bpf_stats.h"
#include "cgroup_enrollment.h"
#include "config.h"
#include "explain.h"
#include "typed_map.h"
#include "version.h"

namespace po = boost::program_options;
using namespace sluice;

namespace {

const char* kUsage =
    "usage: sluicectl [--pin-dir DIR] COMMAND [ARGS]\n"
    "commands:\n"
    "  status                 maps, counters and enabled cgroups on this node\n"
    "  enable CGROUP_PATH     redirect this cgroup and its descendants (takes effect now)\n"
    "  disable CGROUP_PATH    stop redirecting this cgroup\n"
    "  validate FILE...       check rules files (loaded together); exit 0 if they would load\n"
    "  uninstall              detach every link and remove every pin sluice made\n"
    "  explain --config FILE... --cgroup PATH --to ADDR:PORT [--sni NAME]\n"
    "                         what sluice would do with that connection, and which rule decides\n";

int status(const PinLayout& pins) {
  if (!std::filesystem::exists(pins.map("sl_config"))) {
    std::cout << "sluice is not installed on this node (no pins under " << pins.dir.string() << ")\n";
    return 3;
  }
  auto config = TypedMap<__u32, sl_config>::openPinned(pins.map("sl_config")).lookup(0);
  std::cout << "pin dir: " << pins.dir.string() << "\n";
  if (config && config->enabled) {
    in_addr addr{config->redirect_ip4_be};
    std::cout << "redirect to: " << inet_ntoa(addr) << ":" << ntohs(config->redirect_port_be) << "\n";
    std::cout << "rules version: " << config->rules_version << "\n";
    bool ip6 = false;
    for (auto b : config->redirect_ip6) ip6 |= b != 0;
    char text[INET6_ADDRSTRLEN] = {};
    if (ip6) inet_ntop(AF_INET6, config->redirect_ip6, text, sizeof(text));
    std::cout << "redirect IPv6 to: " << (ip6 ? text : "none (IPv6 connects to redirected ports are refused)") << "\n";
    std::cout << "QUIC (UDP to redirected ports): " << (config->block_quic ? "blocked" : "allowed") << "\n";
    std::cout << "own-socket mark: 0x" << std::hex << config->socket_mark << std::dec
              << " (exempt only in the agent's network namespace, cookie " << config->node_netns_cookie << ")\n";
  } else {
    std::cout << "redirect to: (not configured: enabled cgroups are refused on redirected ports)\n";
  }
  std::cout << "redirected ports:";
  for (auto& key : TypedMap<sl_port_key, __u8>::openPinned(pins.map("sl_ports")).keys()) std::cout << " " << key.port;
  std::cout << "\nbypass:";
  for (auto& key : TypedMap<sl_bypass4_key, __u8>::openPinned(pins.map("sl_bypass4")).keys()) {
    in_addr addr{key.addr_be};
    std::cout << " " << inet_ntoa(addr) << "/" << key.prefixlen;
  }
  auto pending = TypedMap<sl_endpoint, sl_orig_dst>::openPinned(pins.map("sl_orig_dst")).keys().size();
  for (auto& key : TypedMap<sl_bypass6_key, __u8>::openPinned(pins.map("sl_bypass6")).keys()) {
    char text[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, key.addr, text, sizeof(text));
    std::cout << " " << text << "/" << key.prefixlen;
  }
  std::cout << "\nexempt cgroups:";
  for (auto id : TypedMap<__u64, __u8>::openPinned(pins.map("sl_exempt")).keys()) {
    auto path = findCgroupById(id);
    std::cout << " " << (path.empty() ? "id=" + std::to_string(id) + "(removed)" : path.string());
  }
  std::cout << "\nflows waiting for the agent: " << pending << " of " << SL_MAX_PENDING_FLOWS << "\n";
  std::cout << "counters:\n";
  auto stats = TypedMap<__u32, __u64>::openPinned(pins.map("sl_stats"));
  int cpus = libbpf_num_possible_cpus();
  for (__u32 i = 0; i < SL_STAT_COUNT; ++i) {
    auto values = stats.lookupPerCpu(i, cpus);
    std::cout << "  " << kStatNames[i] << " " << std::accumulate(values.begin(), values.end(), __u64{0}) << "\n";
  }
  std::cout << "enabled cgroups:\n";
  for (const auto& cgroup : CgroupEnrollment(pins).list()) {
    std::cout << "  id=" << cgroup.id << " " << (cgroup.path.empty() ? "(cgroup removed)" : cgroup.path.string())
              << " programs=" << cgroup.programs.size() << "\n";
  }
  for (const auto& stray : CgroupEnrollment(pins).strayEntries()) {
    std::cout << "  stray entry (not sluice's, ignored): " << stray.string() << "\n";
  }
  std::cout << "counters per cgroup (non-zero):\n";
  auto perCgroup = TypedMap<__u64, sl_cgroup_stats>::openPinned(pins.map("sl_cg_stats"));
  for (__u64 id : perCgroup.keys()) {
    auto values = perCgroup.lookupPerCpu(id, cpus);
    auto path = findCgroupById(id);
    std::cout << "  id=" << id << " " << (path.empty() ? "(cgroup removed)" : path.string());
    for (__u32 i = 0; i < SL_STAT_COUNT; ++i) {
      __u64 sum = 0;
      for (const auto& v : values) sum += v.count[i];
      if (sum) std::cout << " " << kStatNames[i] << "=" << sum;
    }
    std::cout << "\n";
  }
  return 0;
}

int enable(const PinLayout& pins, const std::string& name) {
  auto dir = resolveCgroup(name);
  if (!std::filesystem::exists(pins.program(kProgramHooks[0].name))) {
    throw std::runtime_error("no programs pinned under " + pins.dir.string() + ": start sluice-agent first");
  }
  CgroupEnrollment enrollment(pins);
  bool added = enrollment.enable(dir);
  std::cout << dir.string() << (added ? ": enabled\n" : ": already enabled\n");
  for (const auto& foreign : enrollment.foreignPrograms(dir)) std::cout << "warning: " << foreign << "\n";
  return 0;
}

int disable(const PinLayout& pins, const std::string& name) {
  auto dir = resolveCgroup(name);
  bool removed = CgroupEnrollment(pins).disable(cgroupId(dir));
  std::cout << dir.string() << (removed ? ": disabled\n" : ": was not enabled\n");
  return 0;
}

int validate(const std::vector<std::filesystem::path>& files) {
  try {
    Config config = loadConfigFiles(files);
    for (const auto& warning : config.warnings) std::cerr << "warning: " << warning << "\n";
    std::cout << "ok: " << config.agentHosts.size() << " agent host rule(s), " << config.gatewayHosts.size()
              << " gateway host rule(s), outbound policy " << toString(config.outboundPolicy)
              << (config.agent ? ", agent section" : "") << (config.gateway ? ", gateway section" : "") << "\n";
    return 0;
  } catch (const ConfigError& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}

// Enabled if the cgroup or an ancestor has sluice links (programs apply to descendants).
std::optional<std::filesystem::path> enabledBy(const PinLayout& pins, std::filesystem::path cgroup) {
  const auto root = cgroup2Mount();
  while (true) {
    if (std::filesystem::exists(pins.cgroupLinks(cgroupId(cgroup)))) return cgroup;
    if (cgroup == root || !cgroup.has_parent_path()) return std::nullopt;
    cgroup = cgroup.parent_path();
  }
}

int explain(const PinLayout& pins, const po::variables_map& options) {
  if (!options.count("config") || !options.count("cgroup") || !options.count("to")) {
    throw std::invalid_argument("explain needs --config FILE..., --cgroup PATH and --to ADDR:PORT");
  }
  std::vector<std::filesystem::path> files;
  for (const auto& f : options["config"].as<std::vector<std::string>>()) files.emplace_back(f);
  Config config = loadConfigFiles(files);
  if (!config.agent) throw ConfigError("explain needs the rules' agent section");
  auto to = parseIpv4Endpoint(options["to"].as<std::string>());
  if (!to) throw std::invalid_argument("--to must be IPv4-address:port");
  ConnectionQuery query;
  query.to = *to;
  auto cgroup = resolveCgroup(options["cgroup"].as<std::string>());
  auto by = enabledBy(pins, cgroup);
  query.cgroupEnabled = by.has_value();
  query.enabledBy = by ? by->string() + (*by == cgroup ? "" : " (an ancestor)") : "";
  if (options.count("sni")) query.sni = options["sni"].as<std::string>();
  Explanation e = explainConnection(config, query);
  std::cout << "connection: cgroup " << cgroup.string() << " -> " << formatEndpoint(*to)
            << (query.sni ? " sni " + *query.sni : "") << "\n";
  for (const auto& line : e.lines) std::cout << line << "\n";
  return !e.allowed.has_value() ? 0 : (*e.allowed ? 0 : 4);
}

int uninstall(const PinLayout& pins) {
  if (!std::filesystem::exists(pins.dir)) {
    std::cout << "nothing to remove: " << pins.dir.string() << " does not exist\n";
    return 0;
  }
  CgroupEnrollment enrollment(pins);
  for (const auto& cgroup : enrollment.list()) {
    enrollment.disable(cgroup.id);
    std::cout << "detached cgroup id=" << cgroup.id << " " << (cgroup.path.empty() ? "(removed)" : cgroup.path.string())
              << "\n";
  }
  std::vector<std::filesystem::path> pinsLeft;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(pins.dir)) {
    if (!entry.is_directory()) pinsLeft.push_back(entry.path());
  }
  for (const auto& pin : pinsLeft) {
    std::filesystem::remove(pin);
    std::cout << "removed " << pin.string() << "\n";
  }
  std::filesystem::remove_all(pins.dir);
  std::cout << "removed " << pins.dir.string() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description description("options");
  description.add_options()("help,h", "show this help")("version", "print the version and git revision")(
      "pin-dir", po::value<std::string>()->default_value(kDefaultPinDir.string()), "bpffs directory of sluice's pins")(
      "config", po::value<std::vector<std::string>>()->composing(), "explain: rules file (repeatable)")(
      "cgroup", po::value<std::string>(), "explain: the app's cgroup")(
      "to", po::value<std::string>(), "explain: destination ADDR:PORT")("sni", po::value<std::string>(),
                                                                        "explain: the SNI the app sends")(
      "command", po::value<std::string>(), "command")("args", po::value<std::vector<std::string>>(), "arguments");
  po::positional_options_description positional;
  positional.add("command", 1).add("args", -1);
  po::variables_map options;
  try {
    po::store(po::command_line_parser(argc, argv).options(description).positional(positional).run(), options);
    po::notify(options);
  } catch (const std::exception& e) {
    std::cerr << "sluicectl: " << e.what() << "\n" << kUsage;
    return 2;
  }
  if (options.count("version")) {
    std::cout << versionText("sluicectl") << "\n";
    return 0;
  }
  if (options.count("help") || !options.count("command")) {
    std::cout << kUsage << description << "\n";
    return options.count("help") ? 0 : 2;
  }
  const PinLayout pins{options["pin-dir"].as<std::string>()};
  const std::string command = options["command"].as<std::string>();
  std::vector<std::string> args;
  if (options.count("args")) args = options["args"].as<std::vector<std::string>>();
  auto needArgs = [&](size_t n) {
    if (args.size() != n) throw std::invalid_argument(command + " takes " + std::to_string(n) + " argument(s)");
  };
  libbpf_set_print(nullptr);
  try {
    if (command == "status") return needArgs(0), status(pins);
    if (command == "enable") return needArgs(1), enable(pins, args[0]);
    if (command == "disable") return needArgs(1), disable(pins, args[0]);
    if (command == "validate") {
      if (args.empty()) throw std::invalid_argument("validate takes one or more files");
      return validate(std::vector<std::filesystem::path>(args.begin(), args.end()));
    }
    if (command == "uninstall") return needArgs(0), uninstall(pins);
    if (command == "explain") return needArgs(0), explain(pins, options);
    std::cerr << "sluicectl: unknown command '" << command << "'\n" << kUsage;
    return 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "sluicectl: " << e.what() << "\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "sluicectl " << command << ": " << e.what() << "\n";
    return 1;
  }
}
