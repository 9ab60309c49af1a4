// Open files: the soft RLIMIT_NOFILE raised to the hard limit at start (never the hard
// limit itself), and what an accept loop does when it runs out of descriptors.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "async.h"

namespace sluice {

struct OpenFileLimit {
  uint64_t before = 0;  // soft limit found
  uint64_t soft = 0;    // soft limit now
  uint64_t hard = 0;
};

// Raises the soft limit to the hard one and logs both.
OpenFileLimit raiseOpenFileLimit(const char* daemon);
// Descriptors open now (/proc/self/fd), or 0 if unknown.
size_t openFileCount();

// One descriptor number held in reserve for the moment a process runs out: release() frees
// it for one accept; retake(fd) takes it back by turning `fd` (the accepted socket, done
// with) into the reserve atomically (dup2: the socket closes, the number stays held), so
// no other thread's accept can take the number in between. retake() without a socket
// opens a new one (fails while the process is still out of descriptors: retried later).
class DescriptorReserve {
 public:
  DescriptorReserve();
  ~DescriptorReserve();
  DescriptorReserve(const DescriptorReserve&) = delete;
  DescriptorReserve& operator=(const DescriptorReserve&) = delete;

  bool held() const { return fd_ >= 0; }
  void release();
  bool retake(int socket = -1);

 private:
  int fd_ = -1;
};

// An accept loop's answer to a failed accept. Out of descriptors (EMFILE, ENFILE) or
// kernel memory (ENOBUFS, ENOMEM), the clients waiting in the listen queue are taken one
// by one on a descriptor kept in reserve and reset at once (refused fast, not left
// hanging); then the loop pauses, 10 ms growing to 200 ms while failures go on, instead
// of spinning. Logged at most once a second with a count. One per accept loop.
class AcceptGuard {
 public:
  explicit AcceptGuard(std::string listener) : listener_(std::move(listener)) {}
  AcceptGuard(const AcceptGuard&) = delete;
  AcceptGuard& operator=(const AcceptGuard&) = delete;

  // How long to pause before the next accept.
  std::chrono::milliseconds failed(tcp::acceptor& acceptor, const boost::system::error_code& ec);
  void succeeded() { pause_ = std::chrono::milliseconds(0); }

  uint64_t shed() const { return shed_; }
  uint64_t queueResets() const { return queueResets_; }

 private:
  static constexpr int kMaxShedPerPause = 256;
  static constexpr std::chrono::milliseconds kMaxPause{200};
  void shedWaiting(tcp::acceptor& acceptor);

  std::string listener_;
  DescriptorReserve reserve_;
  std::chrono::milliseconds pause_{0};
  uint64_t failures_ = 0;
  uint64_t failuresLogged_ = 0;
  uint64_t shed_ = 0;
  uint64_t queueResets_ = 0;  // whole queues reset by the listener, the reserve lost
  std::chrono::steady_clock::time_point lastLog_{};
};

// The daemons' accept loop: until `acceptor` closes, each connection is spawned on the
// loop as `serve(socket, peer)`, the peer address coming from accept4 itself (no
// getpeername per connection); `what` names it in an escaped exception's log line. A
// failed accept (EMFILE and friends) goes through an AcceptGuard.
awaitable<void> acceptConnections(tcp::acceptor& acceptor,
                                  std::function<awaitable<void>(tcp::socket, tcp::endpoint)> serve, const char* what);

}  // namespace sluice
