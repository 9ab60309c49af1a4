// Memory that follows the work: after a burst of connections ends, glibc keeps the freed
// heap; this hands it back (malloc_trim) when the count of connections has fallen well
// below its peak, at most once a second. Thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>

#include "async.h"

#include "async.h"

namespace sluice {

// Called with the count of connections whenever one ends.
void noteConnectionCount(size_t active);
// The same check without a connection ending (a daemon's periodic timer): the last
// connections of a burst may end within a second of the previous trim.
void trimMemoryIfDue();
// trimMemoryIfDue every `period` on `io` (a daemon's control loop) while it runs.
void trimMemoryPeriodically(asio::io_context& io, std::chrono::milliseconds period = std::chrono::seconds(2));

// Runs trimMemoryIfDue every 2 s on `io` until it stops.
inline void trimMemoryPeriodically(asio::io_context& io) {
  struct Ticker : std::enable_shared_from_this<Ticker> {
    explicit Ticker(asio::io_context& io) : timer(io) {}
    void next() {
      timer.expires_after(std::chrono::seconds(2));
      timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (ec) return;
        trimMemoryIfDue();
        self->next();
      });
    }
    asio::steady_timer timer;
  };
  std::make_shared<Ticker>(io)->next();
}

}  // namespace sluice
