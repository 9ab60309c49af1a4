// Calls back when any rules file changes: written in place and closed by its writer,
// replaced by rename, or swapped the Kubernetes ConfigMap way (the directory's `..data`
// symlink is renamed over). A file still open for writing is not read: a half-written
// file is not a policy. Events are debounced, and a change that leaves every file's
// bytes as they were is not reported.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "async.h"
#include "fd.h"

namespace sluice {

class ConfigWatcher {
 public:
  ConfigWatcher(asio::io_context& io, std::vector<std::filesystem::path> files, std::function<void()> onChange);
  using Snapshot = std::map<std::filesystem::path, std::string>;
  // The files' bytes now (a missing file has a marker no file can hold).
  Snapshot snapshot() const;
  // Remembers `loaded` (taken before the files were loaded: a write that lands while
  // they load then still counts as a change) as the loaded state.
  void markLoaded(Snapshot loaded);
  awaitable<void> run();

 private:
  // Watches the directories the files live in (and, through symlinks, resolve to) and
  // notes which entry names there can change a file.
  void watchDirectories();
  // Whether the events in buffer[0, length) touch a rules file.
  bool touchesRules(const char* buffer, size_t length);

  asio::io_context& io_;
  std::vector<std::filesystem::path> files_;
  std::function<void()> onChange_;
  UniqueFd inotify_;
  struct WatchedDirectory {
    std::filesystem::path dir;
    std::set<std::string> names;  // entries whose change can change a rules file
  };
  std::map<int, WatchedDirectory> relevant_;  // by watch descriptor
  std::map<std::filesystem::path, std::string> loaded_;
};

}  // namespace sluice
