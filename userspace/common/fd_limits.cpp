#include "fd_limits.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace sluice {

OpenFileLimit raiseOpenFileLimit(const char* daemon) {
  OpenFileLimit out;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    spdlog::warn("{}: cannot read the open-file limit: {}", daemon, std::strerror(errno));
    return out;
  }
  out.before = limit.rlim_cur;
  out.hard = limit.rlim_max;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  out.soft = limit.rlim_cur;
  spdlog::info("open files: limit {} (was {}, hard {})", out.soft, out.before, out.hard);
  return out;
}

size_t openFileCount() {
  std::error_code ec;
  size_t count = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++count;
  }
  return ec ? 0 : count;
}

AcceptGuard::AcceptGuard(std::string listener) : listener_(std::move(listener)) {
  reserve_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

AcceptGuard::~AcceptGuard() {
  if (reserve_ >= 0) ::close(reserve_);
}

void AcceptGuard::shedWaiting(tcp::acceptor& acceptor) {
  if (reserve_ < 0) reserve_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (reserve_ < 0) return;
  ::close(reserve_);
  reserve_ = -1;
  // Every client waiting now (up to a bound per pause), each on the one free descriptor:
  // none of them could be served before descriptors free up, so none is left hanging.
  // The listener is non-blocking (Asio made it so): an empty queue ends the loop.
  for (int i = 0; i < kMaxShedPerPause; ++i) {
    int fd = ::accept4(acceptor.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) break;
    linger reset{1, 0};  // close sends a RST: the client is refused at once
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    ::close(fd);
    ++shed_;
  }
  reserve_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

std::chrono::milliseconds AcceptGuard::failed(tcp::acceptor& acceptor, const boost::system::error_code& ec) {
  ++failures_;
  const int code = ec.category() == boost::system::system_category() ? ec.value() : 0;
  const bool outOfResources = code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM;
  if (outOfResources) shedWaiting(acceptor);
  pause_ = pause_.count() == 0 ? std::chrono::milliseconds(10) : std::min(pause_ * 2, kMaxPause);
  const auto now = std::chrono::steady_clock::now();
  if (now - lastLog_ >= std::chrono::seconds(1)) {
    spdlog::error(
        "accept on {}: {} (failures={} since last line={}, clients reset for lack of descriptors={}); pausing {} ms",
        listener_, ec.message(), failures_, failures_ - failuresLogged_, shed_, pause_.count());
    lastLog_ = now;
    failuresLogged_ = failures_;
  }
  return pause_;
}

}  // namespace sluice
