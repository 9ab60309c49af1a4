// One log format for the daemons and the CLI: time, level, message (key=value fields).
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace sluice {

// Level names as spdlog spells them: trace, debug, info, warn, error. Throws on others.
void setupLogging(const std::string& level);

}  // namespace sluice
