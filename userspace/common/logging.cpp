#include "logging.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <stdexcept>

namespace sluice {

void setupLogging(const std::string& level) {
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    throw std::runtime_error("unknown log level '" + level + "' (trace, debug, info, warn, error)");
  }
  // Worker threads log too: the sink takes a lock per line.
  auto logger = spdlog::stderr_logger_mt("sluice");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::trace);  // tests and operators read the log live
  spdlog::set_default_logger(logger);
}

}  // namespace sluice
