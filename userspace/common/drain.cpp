#include "drain.h"

#include <spdlog/spdlog.h>

namespace sluice {
namespace {

constexpr auto kPoll = std::chrono::milliseconds(20);
// After the resets: how long the reset flows get to end (their RST_STREAMs to go out).
constexpr auto kAfterReset = std::chrono::seconds(2);
// After the last flow: how long the tunnels get to close (GOAWAY both ways, TLS close).
constexpr auto kCarrierGrace = std::chrono::seconds(2);

long long millisSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

Drain::Drain(asio::io_context& control, std::chrono::milliseconds timeout, ActiveFlows& flows, ActiveFlows* carriers,
             DrainStatus& status, Hooks hooks)
    : control_(control),
      timeout_(timeout),
      flows_(flows),
      carriers_(carriers),
      status_(status),
      hooks_(std::move(hooks)),
      timer_(control) {}

void Drain::onSignal(int signal) {
  if (finished_) return;
  if (draining_) {
    spdlog::warn("signal {} during the drain: stopping now", signal);
    resetRemaining("second signal");
    return;
  }
  draining_ = true;
  status_.draining = true;
  started_ = std::chrono::steady_clock::now();
  deadline_ = started_ + timeout_;
  const auto seconds = std::chrono::duration<double>(timeout_).count();
  if (carriers_) {
    spdlog::info("signal {}: draining: {} flows, {} tunnels, deadline {}s", signal, flows_.count(), carriers_->count(),
                 seconds);
  } else {
    spdlog::info("signal {}: draining: {} flows, deadline {}s", signal, flows_.count(), seconds);
  }
  if (hooks_.stopAccepting) hooks_.stopAccepting();
  if (timeout_.count() <= 0) {
    resetRemaining("timeout 0");
    return;
  }
  poll();
}

void Drain::poll() {
  if (finished_) return;
  const auto now = std::chrono::steady_clock::now();
  status_.resetAtDeadline = flows_.resetDone();
  if (flows_.count() == 0 && !flowsEnded_) {
    flowsEnded_ = true;
    flowsEndedAt_ = now;
    if (hooks_.flowsEnded) hooks_.flowsEnded();
  }
  if (flowsEnded_) {
    // The tunnels close by GOAWAY; a peer that does not close its end is not waited for
    // beyond the grace.
    const size_t carriers = carriers_ ? carriers_->count() : 0;
    const std::string how = resetting_ ? "after resets" : "every flow ended";
    if (carriers == 0) {
      finishOnce(how);
      return;
    }
    if (now >= flowsEndedAt_ + kCarrierGrace) {
      finishOnce(how + "; " + std::to_string(carriers) + " tunnels still open");
      return;
    }
  } else if (!resetting_ && now >= deadline_) {
    resetRemaining("deadline");
    return;
  } else if (resetting_ && now >= resetAt_ + kAfterReset) {
    finishOnce("reset flows still ending: " + std::to_string(flows_.count()));
    return;
  }
  timer_.expires_after(kPoll);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) poll();
  });
}

void Drain::resetRemaining(const char* why) {
  if (resetting_ || finished_) return;
  resetting_ = true;
  resetAt_ = std::chrono::steady_clock::now();
  const size_t flows = flows_.resetAll();
  spdlog::warn("drain {}: resetting {} flows after {} ms", why, flows, millisSince(started_));
  timer_.cancel();
  // The resets run on the workers' loops; the count is read once they did.
  asio::post(control_, [this] { poll(); });
}

void Drain::finishOnce(const std::string& how) {
  if (finished_) return;
  finished_ = true;
  timer_.cancel();
  status_.resetAtDeadline = flows_.resetDone();
  spdlog::info("drained in {} ms ({}): flows_reset={}", millisSince(started_), how, flows_.resetDone());
  if (hooks_.finish) hooks_.finish();
}

}  // namespace sluice
