// Memory that follows the work: after a burst of connections ends, glibc keeps the freed
// heap; this hands it back (malloc_trim) when the count of connections has fallen well
// below its peak, at most once a second. Thread-safe.
#pragma once

#include <chrono>
#include <cstddef>

#include "async.h"

namespace sluice {

// Called with the count of connections whenever one ends.
void noteConnectionCount(size_t active);
// The same check without a connection ending (a daemon's periodic timer): the last
// connections of a burst may end within a second of the previous trim.
void trimMemoryIfDue();
// trimMemoryIfDue every `period` on `io` (a daemon's control loop) while it runs.
void trimMemoryPeriodically(asio::io_context& io, std::chrono::milliseconds period = std::chrono::seconds(2));

}  // namespace sluice
