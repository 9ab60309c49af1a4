#include "config_watcher.h"

#include <spdlog/spdlog.h>
#include <sys/inotify.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace sluice {

ConfigWatcher::ConfigWatcher(asio::io_context& io, std::vector<std::filesystem::path> files,
                             std::function<void()> onChange)
    : io_(io), files_(std::move(files)), onChange_(std::move(onChange)) {
  inotify_.reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify_) throw std::runtime_error(std::string("inotify_init1: ") + std::strerror(errno));
  // Watch directories, not files: an editor's rename or a ConfigMap swap replaces the
  // file, and a watch on the old inode would never fire again.
  std::set<std::filesystem::path> dirs;
  for (const auto& f : files_) dirs.insert(std::filesystem::absolute(f).parent_path());
  for (const auto& dir : dirs) {
    if (inotify_add_watch(inotify_.get(), dir.c_str(),
                          IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB) < 0) {
      throw std::runtime_error("watching " + dir.string() + ": " + std::strerror(errno));
    }
  }
  markLoaded();
}

std::map<std::filesystem::path, std::string> ConfigWatcher::snapshot() const {
  std::map<std::filesystem::path, std::string> out;
  for (const auto& f : files_) {
    std::ifstream in(f);
    std::stringstream buffer;
    buffer << in.rdbuf();
    out[f] = in ? buffer.str() : std::string("\0missing", 8);
  }
  return out;
}

void ConfigWatcher::markLoaded() {
  loaded_ = snapshot();
}

awaitable<void> ConfigWatcher::run() {
  asio::posix::stream_descriptor events(io_, dup(inotify_.get()));
  std::vector<char> buffer(16 * (sizeof(inotify_event) + NAME_MAX + 1));
  while (true) {
    boost::system::error_code ec;
    co_await events.async_read_some(asio::buffer(buffer), asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (ec != asio::error::operation_aborted) spdlog::error("rules watcher stopped: {}", ec.message());
      co_return;
    }
    // Let a burst of events (write, rename, symlink swap) settle, then drain them.
    asio::steady_timer settle(io_, std::chrono::milliseconds(100));
    co_await settle.async_wait(asio::redirect_error(use_awaitable, ec));
    while (read(inotify_.get(), buffer.data(), buffer.size()) > 0) {
    }
    if (snapshot() != loaded_) onChange_();
  }
}

}  // namespace sluice
