// sluicectl: the operator's view of a node: status, per-cgroup enablement, rules
// validation, and removal of everything sluice pinned.
#include <arpa/inet.h>
#include <bpf/libbpf.h>

#include <boost/program_options.hpp>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <sstream>

#include "admin_client.h"
#include "admin_server.h"
#include "bpf_pins.h"
#include "bpf_stats.h"
#include "cgroup_enrollment.h"
#include "config.h"
#include "explain.h"
#include "kernel_counters.h"
#include "kernel_features.h"
#include "pod_identity.h"
#include "shared_zones.h"
#include "typed_map.h"
#include "version.h"

namespace po = boost::program_options;
using namespace sluice;

namespace {

// What the agent checks before it loads anything, shown feature by feature.
int kernel() {
  bool all = true;
  std::cout << "kernel " << runningKernelRelease() << "\n";
  for (const auto& f : kernelFeatures()) {
    const bool present = kernelHasFeature(f);
    all = all && present;
    std::cout << (present ? "  ok       " : "  MISSING  ") << std::left << std::setw(13)
              << ("Linux " + std::string(f.firstKernel) + "+") << f.what << "\n";
  }
  std::cout << (all ? "every feature sluice needs is present" : "sluice-agent will refuse to start on this kernel")
            << " (floor: Linux " << kernelFloor() << ")\n";
  return all ? 0 : 1;
}

// The node's kernel side, as the pins say (also while the agent is down).
void printKernelState(const PinLayout& pins) {
  if (!std::filesystem::exists(pins.map("sl_config"))) {
    std::cout << "sluice is not installed on this node (no pins under " << pins.dir.string() << ")\n";
    return;
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
}

// Exit codes of `status` (README): 0 the agent is running and ready, 1 running but not
// ready, 3 not running (its admin endpoint does not answer), 2 usage.
constexpr int kExitNotReady = 1;
constexpr int kExitNotRunning = 3;

struct AgentView {
  bool running = false;
  bool ready = false;
  std::string error;
  nlohmann::json readyz;  // the agent's /readyz answer
};

AgentView askAgent(const tcp::endpoint& admin, std::chrono::milliseconds timeout, bool liveOnly) {
  AgentView view;
  std::string error;
  auto health = adminGet(admin, "/healthz", timeout, error);
  if (!health || health->status != 200) {
    view.error = health ? "/healthz answered " + std::to_string(health->status) : error;
    return view;
  }
  view.running = true;
  if (liveOnly) return view;
  auto ready = adminGet(admin, "/readyz", timeout, error);
  if (!ready) {
    view.error = "/readyz: " + error;
    return view;
  }
  view.ready = ready->status == 200;
  view.readyz = nlohmann::json::parse(ready->body, nullptr, false);
  return view;
}

nlohmann::json kernelJson(const PinLayout& pins) {
  nlohmann::json out;
  out["pinDir"] = pins.dir.string();
  out["installed"] = std::filesystem::exists(pins.map("sl_config"));
  if (!out["installed"]) return out;
  auto config = TypedMap<__u32, sl_config>::openPinned(pins.map("sl_config")).lookup(0);
  out["configured"] = config && config->enabled;
  if (config && config->enabled) {
    in_addr addr{config->redirect_ip4_be};
    out["redirectTo"] = std::string(inet_ntoa(addr)) + ":" + std::to_string(ntohs(config->redirect_port_be));
    out["rulesVersion"] = config->rules_version;
    out["blockQuic"] = config->block_quic != 0;
  }
  KernelCounters counters = readKernelCounters(pins);
  nlohmann::json node = nlohmann::json::object();
  for (size_t i = 0; i < SL_STAT_COUNT; ++i) node[kStatNames[i]] = counters.node[i];
  out["counters"] = node;
  out["handoff"] = {{"entries", counters.handoffEntries}, {"capacity", counters.handoffCapacity}};
  nlohmann::json cgroups = nlohmann::json::array();
  for (const auto& cgroup : CgroupEnrollment(pins).list()) {
    cgroups.push_back({{"id", cgroup.id}, {"path", cgroup.path.string()}, {"programs", cgroup.programs.size()}});
  }
  out["enabledCgroups"] = cgroups;
  nlohmann::json perCgroup = nlohmann::json::object();
  for (const auto& [id, counts] : counters.perCgroup) {
    nlohmann::json c = nlohmann::json::object();
    for (size_t i = 0; i < SL_STAT_COUNT; ++i) {
      if (counts[i]) c[kStatNames[i]] = counts[i];
    }
    perCgroup[std::to_string(id)] = c;
  }
  out["countersPerCgroup"] = perCgroup;
  return out;
}

int status(const PinLayout& pins, const tcp::endpoint& admin, const po::variables_map& options) {
  const bool json = options["output"].as<std::string>() == "json";
  const bool live = options.count("live") > 0;
  const auto timeout = std::chrono::milliseconds(options["timeout-ms"].as<unsigned>());
  AgentView agent = askAgent(admin, timeout, live);
  const int code = !agent.running ? kExitNotRunning : (live || agent.ready) ? 0 : kExitNotReady;
  const std::string address = admin.address().to_string() + ":" + std::to_string(admin.port());
  if (json) {
    nlohmann::json out;
    out["agent"] = {{"admin", address}, {"running", agent.running}, {"ready", agent.ready}};
    if (!agent.error.empty()) out["agent"]["error"] = agent.error;
    if (!agent.readyz.is_discarded() && !agent.readyz.is_null()) out["agent"]["checks"] = agent.readyz["checks"];
    if (!live) out["kernel"] = kernelJson(pins);
    out["exitCode"] = code;
    std::cout << out.dump(2) << "\n";
    return code;
  }
  if (!agent.running) {
    std::cout << "agent: NOT RUNNING (admin endpoint " << address << ": " << agent.error
              << "); pinned programs stay attached, so enabled cgroups' redirected connects fail closed\n";
  } else if (live) {
    std::cout << "agent: running (admin endpoint " << address << ")\n";
  } else {
    std::cout << "agent: running, " << (agent.ready ? "ready" : "NOT READY") << " (admin endpoint " << address << ")\n";
    const auto& checks = agent.readyz.is_object() ? agent.readyz["checks"] : nlohmann::json();
    if (checks.is_object()) {
      if (checks.contains("rules")) {
        std::cout << "  rules: " << (checks["rules"].value("ok", false) ? "ok" : "NOT IN FORCE") << " version "
                  << checks["rules"].value("version", 0) << " (kernel has " << checks["rules"].value("kernelVersion", 0)
                  << ")\n";
      }
      if (checks.contains("programs")) {
        std::cout << "  programs: " << (checks["programs"].value("ok", false) ? "attached" : "NOT ATTACHED") << " at "
                  << checks["programs"]["cgroups"].size() << " enrolled cgroup(s)\n";
      }
      for (const auto& g : checks.value("gateways", nlohmann::json::array())) {
        std::cout << "  gateway " << g.value("address", "?") << " "
                  << (g.value("reachable", false) ? "reachable"
                      : g.value("known", false)   ? "UNREACHABLE"
                                                  : "not yet probed");
        if (g.contains("lastError") && !g.value("reachable", false)) std::cout << ": " << g.value("lastError", "");
        if (g.contains("since")) std::cout << " since " << g.value("since", "");
        std::cout << "\n";
      }
    }
  }
  if (!live) printKernelState(pins);
  return code;
}

// What the running agent enforces: its /config.
int rules(const tcp::endpoint& admin, const po::variables_map& options) {
  std::string error;
  auto reply = adminGet(admin, "/config", std::chrono::milliseconds(options["timeout-ms"].as<unsigned>()), error);
  if (!reply) {
    std::cerr << "sluicectl rules: the agent does not answer at " << admin.address().to_string() << ":" << admin.port()
              << ": " << error << "\n";
    return kExitNotRunning;
  }
  if (reply->status != 200) {
    std::cerr << "sluicectl rules: /config answered " << reply->status << ": " << reply->body;
    return 1;
  }
  auto config = nlohmann::ordered_json::parse(reply->body, nullptr, false);
  if (options["output"].as<std::string>() == "json" || config.is_discarded()) {
    std::cout << reply->body;
    return 0;
  }
  std::cout << "rules version " << config.value("rulesVersion", 0) << " from";
  for (const auto& s : config["sources"]) std::cout << " " << s.get<std::string>();
  std::cout << "\noutbound policy: " << config.value("outboundPolicy", "?") << "\nhosts:\n";
  for (const auto& h : config["hosts"]) {
    std::cout << "  " << h.value("name", "?") << " ports";
    for (const auto& p : h["ports"]) std::cout << " " << p.get<int>();
    std::cout << "\n";
  }
  std::cout << "listen: " << config.value("listen", "?");
  if (config["listen6"].is_string()) std::cout << ", [" << config["listen6"].get<std::string>() << "]";
  std::cout << "\nredirected ports:";
  for (const auto& p : config["redirectPorts"]) std::cout << " " << p.get<int>();
  std::cout << "\nbypass:";
  for (const auto& c : config["bypassCidrs"]) std::cout << " " << c.get<std::string>();
  std::cout << "\ngateways:\n";
  for (const auto& g : config["gateways"]) {
    std::cout << "  " << g.value("address", "?") << " " << g.value("identity", "?") << " "
              << (g.value("reachable", false) ? "reachable" : "unreachable") << "\n";
  }
  const auto& cert = config["certificate"];
  std::cout << "certificate: " << cert.value("uri", "?") << " serial " << cert.value("serial", "?") << " valid "
            << cert.value("notBefore", "?") << " to " << cert.value("notAfter", "?") << "\n";
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

// Beyond the daemons' compiled-in list: every zone of the Public Suffix List, if installed.
void warnPublicSuffixWildcards(const Config& config) {
  std::ifstream in(kPublicSuffixListPath);
  if (!in) return;
  std::stringstream list;
  list << in.rdbuf();
  std::set<std::string> rules;
  for (const auto& hosts : {config.agentHosts, config.gatewayHosts}) {
    for (const auto& rule : hosts) rules.insert(rule.name);
  }
  for (const auto& rule : rules) {
    if (!rule.starts_with("*.") || broadWildcardRisk(rule)) continue;  // the loader warned already
    if (listedPublicSuffix(rule.substr(2), list.str())) {
      std::cerr << "warning: '" << rule << "' covers " << rule.substr(2) << ", a public suffix ("
                << kPublicSuffixListPath
                << "): anyone can get a name there, and a shared front may route an allowed name to another "
                   "tenant (domain fronting). Name the hosts you need\n";
    }
  }
}

int validate(const std::vector<std::filesystem::path>& files) {
  try {
    Config config = loadConfigFiles(files);
    for (const auto& warning : config.warnings) std::cerr << "warning: " << warning << "\n";
    warnPublicSuffixWildcards(config);
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

// The pod-level cgroup of a pod UID (either cgroup driver), searched under the mount.
std::filesystem::path findPodCgroup(const std::string& uid) {
  const auto root = cgroup2Mount();
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           root, std::filesystem::directory_options::skip_permission_denied, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (!it->is_directory(ec)) continue;
    if (it.depth() > 6) {
      it.disable_recursion_pending();
      continue;
    }
    const auto path = it->path();
    if (podUidFromCgroupPath(path.string()) == uid && podUidFromCgroupPath(path.parent_path().string()) != uid) {
      return path;
    }
  }
  throw std::runtime_error("no cgroup of pod " + uid + " under " + root.string());
}

int explain(const PinLayout& pins, const tcp::endpoint& admin, const po::variables_map& options) {
  if (!options.count("to")) throw std::invalid_argument("explain needs --to ADDR:PORT");
  if (options.count("cgroup") == options.count("pod")) {
    throw std::invalid_argument("explain needs one of --cgroup PATH and --pod UID");
  }
  if (options.count("running") == options.count("config")) {
    throw std::invalid_argument("explain needs --config FILE... or --running (ask the running agent)");
  }
  ConnectionQuery query;
  if (!parseDestination(options["to"].as<std::string>(), query)) {
    throw std::invalid_argument("--to must be IPV4:PORT or [IPV6]:PORT");
  }
  auto cgroup = options.count("pod") ? findPodCgroup(options["pod"].as<std::string>())
                                     : resolveCgroup(options["cgroup"].as<std::string>());
  auto by = enabledBy(pins, cgroup);
  query.cgroupEnabled = by.has_value();
  query.enabledBy = by ? by->string() + (*by == cgroup ? "" : " (an ancestor)") : "";
  if (options.count("sni")) query.sni = options["sni"].as<std::string>();
  const bool json = options["output"].as<std::string>() == "json";

  Explanation e;
  std::string source;
  if (options.count("running")) {
    std::string target = "/explain?to=" + urlEncode(options["to"].as<std::string>()) +
                         "&enabled=" + (query.cgroupEnabled ? "1" : "0") + "&enabledBy=" + urlEncode(query.enabledBy);
    if (query.sni) target += "&sni=" + urlEncode(*query.sni);
    std::string error;
    auto reply = adminGet(admin, target, std::chrono::milliseconds(2000), error);
    if (!reply) {
      std::cerr << "sluicectl explain: the agent does not answer at " << admin.address().to_string() << ":"
                << admin.port() << ": " << error << "\n";
      return kExitNotRunning;
    }
    auto answer = nlohmann::json::parse(reply->body, nullptr, false);
    if (reply->status != 200 || answer.is_discarded()) {
      throw std::runtime_error("the agent's /explain answered " + std::to_string(reply->status) + ": " + reply->body);
    }
    e.redirected = answer.value("redirected", false);
    if (answer["allowed"].is_boolean()) e.allowed = answer["allowed"].get<bool>();
    for (const auto& line : answer["lines"]) e.lines.push_back(line.get<std::string>());
    source = "the running agent (rules version " + std::to_string(answer.value("rulesVersion", 0)) + ")";
  } else {
    std::vector<std::filesystem::path> files;
    for (const auto& f : options["config"].as<std::vector<std::string>>()) files.emplace_back(f);
    Config config = loadConfigFiles(files);
    if (!config.agent) throw ConfigError("explain needs the rules' agent section");
    e = explainConnection(config, query);
    source = "files";
  }
  const int code = !e.allowed.has_value() ? 0 : (*e.allowed ? 0 : 4);
  if (json) {
    nlohmann::json out = {{"cgroup", cgroup.string()},
                          {"to", options["to"].as<std::string>()},
                          {"sni", query.sni ? nlohmann::json(*query.sni) : nlohmann::json(nullptr)},
                          {"rulesFrom", source},
                          {"redirected", e.redirected},
                          {"allowed", e.allowed ? nlohmann::json(*e.allowed) : nlohmann::json(nullptr)},
                          {"lines", e.lines},
                          {"exitCode", code}};
    std::cout << out.dump(2) << "\n";
    return code;
  }
  std::cout << "connection: cgroup " << cgroup.string() << " -> " << options["to"].as<std::string>()
            << (query.sni ? " sni " + *query.sni : "") << " (rules from " << source << ")\n";
  for (const auto& line : e.lines) std::cout << line << "\n";
  return code;
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

struct Command {
  const char* name;
  const char* synopsis;  // after "sluicectl [GLOBAL] NAME"
  const char* summary;
};

constexpr Command kCommands[] = {
    {"status", "[-o text|json] [--live]",
     "is the agent alive and ready (asks its admin endpoint), the gateways' health, and the kernel side: maps, "
     "counters, enabled cgroups. Exit 0 ready, 1 running but not ready, 3 not running"},
    {"rules", "[-o text|json]", "what the running agent enforces (its /config). Exit 3 if it does not answer"},
    {"enable", "CGROUP_PATH", "redirect this cgroup and its descendants (takes effect now)"},
    {"disable", "CGROUP_PATH", "stop redirecting this cgroup"},
    {"validate", "FILE...", "check rules files (loaded together; kind: List accepted); exit 0 if they would load"},
    {"uninstall", "", "detach every link and remove every pin sluice made"},
    {"explain", "(--config FILE... | --running) (--cgroup PATH | --pod UID) --to ADDR:PORT [--sni NAME] [-o json]",
     "what sluice would do with that connection, and which rule decides (exit 4: deny)"},
    {"kernel", "", "the kernel features the agent needs, each probed on this kernel"},
};

std::string usage(const po::options_description& global) {
  std::ostringstream out;
  out << "usage: sluicectl [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]\n"
      << "       sluicectl COMMAND --help\n\ncommands:\n";
  for (const auto& c : kCommands) out << "  " << std::left << std::setw(10) << c.name << c.summary << "\n";
  out << "\n"
      << global << "\nexit codes: 0 ok, 1 failure (or status: not ready), 2 usage, 3 the agent is not "
      << "running (status, rules, explain --running), 4 explain: denied\n";
  return out.str();
}

// Each command's own options and positional arguments.
po::options_description commandOptions(const std::string& name, po::positional_options_description& positional) {
  po::options_description options("options of '" + name + "'");
  options.add_options()("help,h", "show this command's help");
  if (name == "status" || name == "rules" || name == "explain") {
    options.add_options()("output,o", po::value<std::string>()->default_value("text"), "text or json");
  }
  if (name == "status" || name == "rules") {
    options.add_options()("timeout-ms", po::value<unsigned>()->default_value(2000),
                          "how long to wait for the agent's admin endpoint");
  }
  if (name == "status") {
    options.add_options()("live", "only ask whether the agent is alive (/healthz): a liveness probe");
  }
  if (name == "enable" || name == "disable") {
    options.add_options()("cgroup-path", po::value<std::string>()->required(), "cgroup (positional)");
    positional.add("cgroup-path", 1);
  }
  if (name == "validate") {
    options.add_options()("files", po::value<std::vector<std::string>>()->required(), "rules files (positional)");
    positional.add("files", -1);
  }
  if (name == "explain") {
    options.add_options()("config", po::value<std::vector<std::string>>()->composing(), "rules file (repeatable)")(
        "running", "ask the running agent instead of reading files")(
        "cgroup", po::value<std::string>(), "the app's cgroup (relative to the cgroup2 mount or absolute)")(
        "pod", po::value<std::string>(), "the app's pod, by UID (its cgroup is looked up)")(
        "to", po::value<std::string>(), "destination IPV4:PORT or [IPV6]:PORT")("sni", po::value<std::string>(),
                                                                                "the SNI the app sends");
  }
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description global("global options");
  global.add_options()("help,h", "show this help")("version", "print the version and git revision")(
      "pin-dir", po::value<std::string>()->default_value(kDefaultPinDir.string()), "bpffs directory of sluice's pins")(
      "admin-address", po::value<std::string>()->default_value(kDefaultAdminAddress),
      "the agent's admin endpoint (its --admin-address)");
  // Global options come before the command: split argv at the first non-option.
  int split = 1;
  while (split < argc) {
    std::string arg = argv[split];
    if (arg.empty() || arg[0] != '-') break;
    ++split;
    if ((arg == "--pin-dir" || arg == "--admin-address") && split < argc) ++split;
  }
  po::variables_map globals;
  try {
    po::store(po::command_line_parser(split, argv).options(global).run(), globals);
    po::notify(globals);
  } catch (const std::exception& e) {
    std::cerr << "sluicectl: " << e.what() << "\n" << usage(global);
    return 2;
  }
  if (globals.count("version")) {
    std::cout << versionText("sluicectl") << "\n";
    return 0;
  }
  if (split >= argc) {
    std::cout << usage(global);
    return globals.count("help") ? 0 : 2;
  }
  const std::string command = argv[split];
  const Command* known = nullptr;
  for (const auto& c : kCommands) {
    if (command == c.name) known = &c;
  }
  if (!known) {
    std::cerr << "sluicectl: unknown command '" << command << "'\n" << usage(global);
    return 2;
  }
  po::positional_options_description positional;
  po::options_description options = commandOptions(command, positional);
  auto commandUsage = [&] {
    std::ostringstream out;
    out << "usage: sluicectl [GLOBAL OPTIONS] " << known->name << " " << known->synopsis << "\n  " << known->summary
        << "\n\n"
        << options;
    return out.str();
  };
  po::variables_map values;
  std::vector<const char*> rest{argv[0]};
  for (int i = split + 1; i < argc; ++i) rest.push_back(argv[i]);
  try {
    po::store(po::command_line_parser(static_cast<int>(rest.size()), rest.data())
                  .options(options)
                  .positional(positional)
                  .run(),
              values);
    if (values.count("help")) {
      std::cout << commandUsage();
      return 0;
    }
    po::notify(values);
    if (values.count("output")) {
      const auto& output = values["output"].as<std::string>();
      if (output != "text" && output != "json") throw std::invalid_argument("-o must be text or json");
    }
  } catch (const std::exception& e) {
    std::cerr << "sluicectl " << command << ": " << e.what() << "\n" << commandUsage();
    return 2;
  }
  const PinLayout pins{globals["pin-dir"].as<std::string>()};
  libbpf_set_print(nullptr);
  try {
    const tcp::endpoint admin = parseAdminAddress(globals["admin-address"].as<std::string>());
    if (command == "status") return status(pins, admin, values);
    if (command == "rules") return rules(admin, values);
    if (command == "enable") return enable(pins, values["cgroup-path"].as<std::string>());
    if (command == "disable") return disable(pins, values["cgroup-path"].as<std::string>());
    if (command == "validate") {
      const auto files = values["files"].as<std::vector<std::string>>();
      return validate(std::vector<std::filesystem::path>(files.begin(), files.end()));
    }
    if (command == "uninstall") return uninstall(pins);
    if (command == "explain") return explain(pins, admin, values);
    if (command == "kernel") return kernel();
  } catch (const std::invalid_argument& e) {
    std::cerr << "sluicectl " << command << ": " << e.what() << "\n" << commandUsage();
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "sluicectl " << command << ": " << e.what() << "\n";
    return 1;
  }
  return 2;
}
