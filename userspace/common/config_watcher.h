// Calls back when any rules file changes: written in place, replaced by rename, or
// swapped the Kubernetes ConfigMap way (the directory's `..data` symlink is renamed
// over). Events are debounced, and a change that leaves every file's bytes as they were
// is not reported.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "async.h"
#include "fd.h"

namespace sluice {

class ConfigWatcher {
 public:
  ConfigWatcher(asio::io_context& io, std::vector<std::filesystem::path> files, std::function<void()> onChange);
  // Remembers the files' current bytes as the loaded state.
  void markLoaded();
  awaitable<void> run();

 private:
  std::map<std::filesystem::path, std::string> snapshot() const;

  asio::io_context& io_;
  std::vector<std::filesystem::path> files_;
  std::function<void()> onChange_;
  UniqueFd inotify_;
  std::map<std::filesystem::path, std::string> loaded_;
};

}  // namespace sluice
