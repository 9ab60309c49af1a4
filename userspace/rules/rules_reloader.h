// How a daemon takes new rules: on a file change (ConfigWatcher) or SIGHUP, load the
// files once, decide whether they may replace the running rules (reloadRefusal), then
// hand them to the daemon to build and install; if anything fails, the running rules
// stay and the rejection is logged with its reason and counted. Shared by the agent and
// the gateway so they cannot drift apart.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "async.h"
#include "config.h"
#include "config_watcher.h"
#include "reload_admission.h"
#include "spawn.h"

namespace sluice {

struct ReloadPolicy {
  RulesDaemon daemon;
  bool allowEmptyRules = false;  // the daemon's --allow-empty-rules
};

class RulesReloader {
 public:
  // build(version, config) makes the next rule set from the loaded files and installs it
  // (throwing refuses it); it returns a short description for the log ("hosts=3 ...").
  using BuildAndInstall = std::function<std::string(uint64_t version, Config next)>;

  // `running` is the configuration the daemon started with.
  RulesReloader(asio::io_context& io, std::vector<std::filesystem::path> files, bool watch, ReloadPolicy policy,
                const Config& running, BuildAndInstall buildAndInstall)
      : files_(files),
        policy_(policy),
        runningAllowed_(allowedHosts(running, policy.daemon).size()),
        running_(running),
        buildAndInstall_(std::move(buildAndInstall)) {
    if (!watch) return;
    watcher_ = std::make_unique<ConfigWatcher>(io, std::move(files), [this] { reload("file changed"); });
    asio::co_spawn(io, watcher_->run(), logEscapedException("rules watcher"));
  }

  void reload(const char* why) {
    try {
      auto before = watcher_ ? watcher_->snapshot() : ConfigWatcher::Snapshot{};
      Config next = loadConfigFiles(files_);
      if (auto refusal = reloadRefusal(next, policy_.daemon, runningAllowed_, policy_.allowEmptyRules)) {
        throw ConfigError(*refusal);
      }
      const size_t allowed = allowedHosts(next, policy_.daemon).size();
      Config kept = next;
      std::string description = buildAndInstall_(version_ + 1, std::move(next));
      running_ = std::move(kept);
      ++version_;
      runningAllowed_ = allowed;
      if (watcher_) watcher_->markLoaded(std::move(before));
      spdlog::info("rules reloaded ({}) version={} {}", why, version_, description);
    } catch (const std::exception& e) {
      ++rejected_;
      spdlog::error("rules rejected ({}) rejected_total={}; keeping version={}: {}", why, rejected_, version_,
                    e.what());
    }
  }
  uint64_t version() const { return version_; }
  uint64_t rejected() const { return rejected_; }
  // The configuration in force (what /config shows).
  const Config& running() const { return running_; }

 private:
  std::vector<std::filesystem::path> files_;
  ReloadPolicy policy_;
  size_t runningAllowed_;
  Config running_;
  BuildAndInstall buildAndInstall_;
  std::unique_ptr<ConfigWatcher> watcher_;
  uint64_t version_ = 1;  // the rule set the daemon started with
  uint64_t rejected_ = 0;
};

}  // namespace sluice
