// Whether new rules may replace the running ones, decided before anything is installed.
// A rules file cut short or half written often still loads, with fewer rules than its
// author wrote, and most often with none: both daemons would then refuse all egress
// until someone noticed. Shared by RulesReloader (both daemons) and the tests.
#pragma once

#include <optional>
#include <set>
#include <string>

#include "config.h"

namespace sluice {

enum class RulesDaemon { Agent, Gateway };

// What `config` lets that daemon reach: "host:port,port" per rule, plus "ALLOW_ANY" when
// the agent passes unknown hosts straight through. Empty: the daemon allows nothing.
std::set<std::string> allowedHosts(const Config& config, RulesDaemon daemon);

// Why `next` must not replace running rules that allow `runningAllowed` entries (as
// allowedHosts counts them); nullopt when it may. `allowEmptyRules` is the daemon's
// --allow-empty-rules flag; a native `hosts: []` in the files says the same.
std::optional<std::string> reloadRefusal(const Config& next, RulesDaemon daemon, size_t runningAllowed,
                                         bool allowEmptyRules);

const char* toString(RulesDaemon daemon);

}  // namespace sluice
