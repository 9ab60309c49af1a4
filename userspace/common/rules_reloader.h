// How a daemon takes new rules: on a file change (ConfigWatcher) or SIGHUP, build the
// next rule set and hand it over; if anything fails, the running rules stay and the
// rejection is counted. Shared by the agent and the gateway so they cannot drift apart.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "async.h"
#include "config_watcher.h"
#include "spawn.h"

namespace sluice {

class RulesReloader {
 public:
  // build(version) makes the next rule set and installs it (throwing refuses it);
  // it returns a short description for the log ("hosts=3 ...").
  using BuildAndInstall = std::function<std::string(uint64_t version)>;

  RulesReloader(asio::io_context& io, std::vector<std::filesystem::path> files, bool watch,
                BuildAndInstall buildAndInstall)
      : buildAndInstall_(std::move(buildAndInstall)) {
    if (!watch) return;
    watcher_ = std::make_unique<ConfigWatcher>(io, std::move(files), [this] { reload("file changed"); });
    asio::co_spawn(io, watcher_->run(), logEscapedException("rules watcher"));
  }

  void reload(const char* why) {
    try {
      std::string description = buildAndInstall_(version_ + 1);
      ++version_;
      if (watcher_) watcher_->markLoaded();
      spdlog::info("rules reloaded ({}) version={} {}", why, version_, description);
    } catch (const std::exception& e) {
      ++rejected_;
      spdlog::error("rules rejected ({}) rejected_total={}; keeping version={}: {}", why, rejected_, version_,
                    e.what());
    }
  }
  uint64_t version() const { return version_; }

 private:
  BuildAndInstall buildAndInstall_;
  std::unique_ptr<ConfigWatcher> watcher_;
  uint64_t version_ = 1;  // the rule set the daemon started with
  uint64_t rejected_ = 0;
};

}  // namespace sluice
