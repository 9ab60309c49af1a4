#include "reload_admission.h"

namespace sluice {

std::set<std::string> allowedHosts(const Config& config, RulesDaemon daemon) {
  std::set<std::string> out;
  for (const auto& rule : daemon == RulesDaemon::Agent ? config.agentHosts : config.gatewayHosts) {
    std::string entry = rule.name + ":";
    for (uint16_t port : rule.ports) entry += (entry.back() == ':' ? "" : ",") + std::to_string(port);
    out.insert(entry);
  }
  if (daemon == RulesDaemon::Agent && config.outboundPolicy == OutboundPolicy::AllowAny) out.insert("ALLOW_ANY");
  return out;
}

std::optional<std::string> reloadRefusal(const Config& next, RulesDaemon daemon, size_t runningAllowed,
                                         bool allowEmptyRules) {
  if (daemon == RulesDaemon::Agent && !next.agent) {
    return "no 'agent' section in the rules files: sluice-agent needs one";
  }
  if (daemon == RulesDaemon::Gateway && !next.gateway) {
    return "no 'gateway' section in the rules files: sluice-gateway needs one";
  }
  if (runningAllowed > 0 && allowedHosts(next, daemon).empty() && !allowEmptyRules && !next.emptyByIntent) {
    return "the new rules allow no host where the running rules allow " + std::to_string(runningAllowed) +
           ": a file cut short or half written looks like this, so they are refused. To allow nothing on "
           "purpose, write `hosts: []` or start " +
           toString(daemon) + " with --allow-empty-rules";
  }
  return std::nullopt;
}

const char* toString(RulesDaemon daemon) {
  return daemon == RulesDaemon::Agent ? "sluice-agent" : "sluice-gateway";
}

}  // namespace sluice
