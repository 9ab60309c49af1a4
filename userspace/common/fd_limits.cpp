#include "fd_limits.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "asio_address.h"
#include "spawn.h"

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

namespace {

// The source of every reserve (never closed): dup2 from it turns any number into a reserve.
int spareDescriptor() {
  static const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd;
}

}  // namespace

DescriptorReserve::DescriptorReserve() {
  retake();
}

DescriptorReserve::~DescriptorReserve() {
  release();
}

void DescriptorReserve::release() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool DescriptorReserve::retake(int socket) {
  const int spare = spareDescriptor();
  if (spare < 0) return false;
  if (socket >= 0) {
    if (::dup3(spare, socket, O_CLOEXEC) < 0) {
      ::close(socket);
      socket = -1;
    }
    if (fd_ >= 0 && socket >= 0) {
      ::close(socket);  // already held one
    } else if (socket >= 0) {
      fd_ = socket;
    }
  }
  if (fd_ < 0) fd_ = ::fcntl(spare, F_DUPFD_CLOEXEC, 0);
  return fd_ >= 0;
}

// Without a descriptor to take them on, the listener itself refuses its waiting clients:
// shutdown() of a listening socket resets every connection in its accept queue, and
// listen() makes the same descriptor listen again (every acceptConnections listener
// listens with max_listen_connections). A reserve can be lost: while one loop's reserved
// number is free for its accept, another thread may take it (another loop's accept).
// Without this, that loop's queue then waited until some descriptor freed up.
static bool resetAcceptQueue(tcp::acceptor& acceptor) {
  const int fd = acceptor.native_handle();
  if (::shutdown(fd, SHUT_RD) != 0) return false;
  if (::listen(fd, asio::socket_base::max_listen_connections) == 0) return true;
  // Not listening now: every accept fails with EINVAL, and failed() listens again.
  spdlog::error("listener fd {}: listen again after resetting its queue: {}", fd, std::strerror(errno));
  return false;
}

void AcceptGuard::shedWaiting(tcp::acceptor& acceptor) {
  if (!reserve_.held() && !reserve_.retake()) {
    pollfd waiting{acceptor.native_handle(), POLLIN, 0};
    if (::poll(&waiting, 1, 0) == 1 && resetAcceptQueue(acceptor)) ++queueResets_;
    return;
  }
  // Every client waiting now (up to a bound per pause), each on the reserved number:
  // none of them could be served before descriptors free up, so none is left hanging.
  // An empty queue ends the loop.
  for (int i = 0; i < kMaxShedPerPause; ++i) {
    pollfd waiting{acceptor.native_handle(), POLLIN, 0};
    if (::poll(&waiting, 1, 0) != 1) break;  // also safe on a blocking listener
    reserve_.release();
    int fd = ::accept4(acceptor.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      // Another thread took the free number first: no reserve now, unless one frees up.
      if (!reserve_.retake() && resetAcceptQueue(acceptor)) ++queueResets_;
      break;
    }
    linger reset{1, 0};  // closing it sends a RST: the client is refused at once
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    reserve_.retake(fd);
    ++shed_;
  }
}

std::chrono::milliseconds AcceptGuard::failed(tcp::acceptor& acceptor, const boost::system::error_code& ec) {
  ++failures_;
  const int code = ec.category() == boost::system::system_category() ? ec.value() : 0;
  const bool outOfResources = code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM;
  if (outOfResources) shedWaiting(acceptor);
  // A listener left closed by a queue reset whose listen() failed: listen again.
  if (code == EINVAL) ::listen(acceptor.native_handle(), asio::socket_base::max_listen_connections);
  pause_ = pause_.count() == 0 ? std::chrono::milliseconds(10) : std::min(pause_ * 2, kMaxPause);
  const auto now = std::chrono::steady_clock::now();
  if (now - lastLog_ >= std::chrono::seconds(1)) {
    spdlog::error(
        "accept on {}: {} (failures={} since last line={}, clients reset for lack of descriptors={}, queue resets "
        "without a reserve={}); pausing {} ms",
        listener_, ec.message(), failures_, failures_ - failuresLogged_, shed_, queueResets_, pause_.count());
    lastLog_ = now;
    failuresLogged_ = failures_;
  }
  return pause_;
}

awaitable<void> acceptConnections(tcp::acceptor& acceptor,
                                  std::function<awaitable<void>(tcp::socket, tcp::endpoint)> serve, const char* what) {
  auto executor = co_await asio::this_coro::executor;
  boost::system::error_code ignored;
  AcceptGuard guard(formatEndpoint(acceptor.local_endpoint(ignored)));
  while (acceptor.is_open()) {
    boost::system::error_code ec;
    tcp::endpoint peer;
    tcp::socket client = co_await acceptor.async_accept(peer, asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted) break;
    if (ec) {
      // The waiting client is reset, the loop pauses (growing).
      asio::steady_timer pause(executor, guard.failed(acceptor, ec));
      co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    guard.succeeded();
    asio::co_spawn(executor, serve(std::move(client), peer), logEscapedException(what));
  }
}

}  // namespace sluice
