// Boost.Asio names used across the daemons, and small helpers for deadlines.
#pragma once

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
// clang-format off
#include <utility>
#include <boost/asio.hpp>
// clang-format on

#include <chrono>
#include <functional>
#include <memory>

namespace sluice {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;

// Runs `onExpire` (typically: close the socket, so its pending operation fails) if the
// time passes before the Deadline is destroyed. Safe to destroy before the timer fires.
class Deadline {
 public:
  Deadline(asio::any_io_executor executor, std::chrono::milliseconds timeout, std::function<void()> onExpire)
      : state_(std::make_shared<State>(executor)) {
    state_->onExpire = std::move(onExpire);
    state_->timer.expires_after(timeout);
    state_->timer.async_wait([state = state_](const boost::system::error_code& ec) {
      if (ec || !state->onExpire) return;
      state->expired = true;
      state->onExpire();
    });
  }
  ~Deadline() {
    state_->onExpire = nullptr;
    state_->timer.cancel();
  }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  bool expired() const { return state_->expired; }

 private:
  struct State {
    explicit State(asio::any_io_executor executor) : timer(executor) {}
    asio::steady_timer timer;
    std::function<void()> onExpire;
    bool expired = false;
  };
  std::shared_ptr<State> state_;
};

// A one-shot event a coroutine can wait for (Boost 1.74 has no awaitable operators).
class Signal {
 public:
  explicit Signal(asio::any_io_executor executor) : timer_(executor) {
    timer_.expires_at(asio::steady_timer::time_point::max());
  }
  void set() {
    set_ = true;
    timer_.cancel();
  }
  awaitable<void> wait() {
    while (!set_) {
      boost::system::error_code ec;
      co_await timer_.async_wait(asio::redirect_error(use_awaitable, ec));
    }
  }

 private:
  asio::steady_timer timer_;
  bool set_ = false;
};

}  // namespace sluice
