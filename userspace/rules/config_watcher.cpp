#include "config_watcher.h"

#include <spdlog/spdlog.h>
#include <sys/inotify.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace sluice {
namespace {

// In place: only once the writer closed the file (IN_CLOSE_WRITE, never IN_MODIFY, and
// not IN_ATTRIB, which an open with O_TRUNC raises before a byte is written). Replaced:
// a rename onto the name (IN_MOVED_TO) or a new symlink (IN_CREATE; a new regular file
// is read at its IN_CLOSE_WRITE instead).
constexpr uint32_t kEvents = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE;

}  // namespace

ConfigWatcher::ConfigWatcher(asio::io_context& io, std::vector<std::filesystem::path> files,
                             std::function<void()> onChange)
    : io_(io), files_(std::move(files)), onChange_(std::move(onChange)) {
  inotify_.reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify_) throw std::runtime_error(std::string("inotify_init1: ") + std::strerror(errno));
  markLoaded(snapshot());
}

void ConfigWatcher::watchDirectories() {
  // Watch directories, not files: an editor's rename or a ConfigMap swap replaces the
  // file, and a watch on the old inode would never fire again.
  relevant_.clear();
  auto watch = [&](const std::filesystem::path& dir, const std::string& name) {
    int wd = inotify_add_watch(inotify_.get(), dir.c_str(), kEvents);
    if (wd < 0) throw std::runtime_error("watching " + dir.string() + ": " + std::strerror(errno));
    relevant_[wd].dir = dir;
    relevant_[wd].names.insert(name);
  };
  for (const auto& f : files_) {
    const auto path = std::filesystem::absolute(f);
    watch(path.parent_path(), path.filename());
    std::error_code ec;
    // rules.yaml -> ..data/rules.yaml: the swap renames `..data`.
    if (std::filesystem::is_symlink(path, ec)) {
      auto target = std::filesystem::read_symlink(path, ec);
      if (!ec && target.is_relative() && !target.empty()) watch(path.parent_path(), target.begin()->string());
    }
    // A file reached through symlinks is also written where it really lives.
    auto real = std::filesystem::canonical(path, ec);
    if (!ec && real != path) watch(real.parent_path(), real.filename());
  }
}

ConfigWatcher::Snapshot ConfigWatcher::snapshot() const {
  Snapshot out;
  for (const auto& f : files_) {
    std::ifstream in(f);
    std::stringstream buffer;
    buffer << in.rdbuf();
    out[f] = in ? buffer.str() : std::string("\0missing", 8);
  }
  return out;
}

void ConfigWatcher::markLoaded(Snapshot loaded) {
  loaded_ = std::move(loaded);
  // A ConfigMap swap moves the files to a new directory: follow them there.
  watchDirectories();
}

bool ConfigWatcher::touchesRules(const char* buffer, size_t length) {
  bool touched = false;
  for (size_t pos = 0; pos + sizeof(inotify_event) <= length;) {
    inotify_event event;
    std::memcpy(&event, buffer + pos, sizeof(event));
    const size_t size = sizeof(inotify_event) + event.len;
    if (pos + size > length) break;
    std::string name = event.len ? std::string(buffer + pos + sizeof(inotify_event)) : std::string();
    if (event.mask & IN_Q_OVERFLOW) touched = true;  // events were lost: look anyway
    auto it = relevant_.find(event.wd);
    if (it != relevant_.end() && it->second.names.contains(name)) {
      // Only a symlink is complete when created; a new regular file is read when closed.
      std::error_code ec;
      if (!(event.mask & IN_CREATE) || std::filesystem::is_symlink(it->second.dir / name, ec)) touched = true;
    }
    pos += size;
  }
  return touched;
}

awaitable<void> ConfigWatcher::run() {
  asio::posix::stream_descriptor events(io_, dup(inotify_.get()));
  std::vector<char> buffer(16 * (sizeof(inotify_event) + NAME_MAX + 1));
  while (true) {
    boost::system::error_code ec;
    size_t n = co_await events.async_read_some(asio::buffer(buffer), asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (ec != asio::error::operation_aborted) spdlog::error("rules watcher stopped: {}", ec.message());
      co_return;
    }
    bool touched = touchesRules(buffer.data(), n);
    if (!touched) continue;
    // Let a burst of events (write, rename, symlink swap) settle, then drain them.
    asio::steady_timer settle(io_, std::chrono::milliseconds(100));
    co_await settle.async_wait(asio::redirect_error(use_awaitable, ec));
    while (read(inotify_.get(), buffer.data(), buffer.size()) > 0) {
    }
    if (snapshot() != loaded_) onChange_();
  }
}

}  // namespace sluice
