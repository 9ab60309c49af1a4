// Graceful drain on SIGTERM, the same for both daemons: stop accepting (the kernel then
// refuses new connects), let the flows end on their own, and stop when the last one has
// ended or, at the deadline, reset (linger-0 RST) those left and stop. A second signal
// during the drain resets the rest at once. Runs on the control loop.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include "active_flows.h"
#include "async.h"

namespace sluice {

// What the admin endpoint reports (read from the control thread and scrapes).
struct DrainStatus {
  std::atomic<bool> draining{false};
  std::atomic<uint64_t> resetAtDeadline{0};  // flows reset when the deadline (or a second signal) came
};

class Drain {
 public:
  struct Hooks {
    // Close every listener (every worker, v4 and v6); called once, on the control loop.
    std::function<void()> stopAccepting;
    // The last flow has ended (or was reset): close the carriers now (the agent's tunnels
    // say GOAWAY); they get a short grace to close. Optional.
    std::function<void()> flowsEnded;
    // Everything has ended (or was reset): stop the daemon.
    std::function<void()> finish;
  };
  // `flows`: what is counted, waited for and reset. `carriers` (optional): connections
  // that carry flows (tunnels), waited for a short grace after the last flow, not counted
  // as flows.
  Drain(asio::io_context& control, std::chrono::milliseconds timeout, ActiveFlows& flows, ActiveFlows* carriers,
        DrainStatus& status, Hooks hooks);
  // A stop signal: the first begins the drain, another one during it stops now.
  void onSignal(int signal);

 private:
  void poll();
  void resetRemaining(const char* why);
  void finishOnce(const std::string& how);
  size_t remaining() const { return flows_.count() + (carriers_ ? carriers_->count() : 0); }

  asio::io_context& control_;
  std::chrono::milliseconds timeout_;
  ActiveFlows& flows_;
  ActiveFlows* carriers_;
  DrainStatus& status_;
  Hooks hooks_;
  asio::steady_timer timer_;
  std::chrono::steady_clock::time_point started_{}, deadline_{}, resetAt_{}, flowsEndedAt_{};
  bool draining_ = false;
  bool flowsEnded_ = false;
  bool resetting_ = false;
  bool finished_ = false;
};

}  // namespace sluice
