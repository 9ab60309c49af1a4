// The daemons' signal handling: SIGHUP reloads, SIGINT and SIGTERM stop (the first one
// begins the drain, a later one stops at once: `stop` is called for each). One place, so
// the agent and the gateway cannot drift apart.
#pragma once

#include <signal.h>

#include <functional>
#include <memory>

#include "async.h"

namespace sluice {

class SignalHandling {
 public:
  SignalHandling(asio::io_context& io, std::function<void()> reload, std::function<void(int)> stop)
      : signals_(io, SIGINT, SIGTERM, SIGHUP), reload_(std::move(reload)), stop_(std::move(stop)) {
    arm();
  }

 private:
  void arm() {
    signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
      if (ec) return;
      if (signal == SIGHUP) {
        reload_();
      } else {
        stop_(signal);
      }
      arm();
    });
  }
  asio::signal_set signals_;
  std::function<void()> reload_;
  std::function<void(int)> stop_;
};

// Must live as long as `io` runs.
inline std::unique_ptr<SignalHandling> handleSignals(asio::io_context& io, std::function<void()> reload,
                                                     std::function<void(int)> stop) {
  return std::make_unique<SignalHandling>(io, std::move(reload), std::move(stop));
}

}  // namespace sluice
