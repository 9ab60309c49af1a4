// Is the gateway reachable? Each tunnel's outcome says so as it happens (from any
// thread), and a TCP connect probe every 2 s (marked like every agent socket; the
// gateway closes a connection that sends nothing without logging it) says so when no
// flow runs. /readyz and `sluicectl status` read it.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>

#include "async.h"

namespace sluice {

class GatewayHealth {
 public:
  GatewayHealth(asio::io_context& io, tcp::endpoint gateway, uint32_t socketMark);
  // Starts the probe loop on `io` (the control thread).
  void start();
  void stop();
  // A reload may name another gateway: the next probe goes there (control thread).
  void setTarget(tcp::endpoint gateway, uint32_t socketMark);

  // From the forwarder, on any thread: a tunnel was made (true) or could not be (false).
  void recordTunnel(bool reachable, const std::string& error = {});

  struct View {
    std::string gateway;  // address:port
    bool known = false;   // false until the first probe or tunnel
    bool reachable = false;
    std::string lastError;
    int64_t lastChangeUnixSeconds = 0;
    uint64_t consecutiveFailures = 0;
  };
  View view() const;
  bool reachable() const { return reachable_.load(); }

  static constexpr std::chrono::milliseconds kInterval{2000};
  static constexpr std::chrono::milliseconds kProbeTimeout{1000};

 private:
  awaitable<void> probeLoop();
  void record(bool reachable, const std::string& error);

  asio::io_context& io_;
  asio::steady_timer timer_;
  tcp::endpoint target_;
  uint32_t socketMark_;
  bool stopped_ = false;
  std::atomic<bool> reachable_{false};
  mutable std::mutex mutex_;
  View view_;
};

}  // namespace sluice
