// Memory that follows the work: after a burst of connections ends, the allocator keeps the
// freed heap; this hands it back when the count of connections has fallen well below its
// peak, at most once a second. Thread-safe.
//
// The daemons run on jemalloc (linked in; see allocator_config.cpp): glibc's malloc cannot
// give back a page that still holds one live object, and every burst leaves such objects
// spread over its whole heap (Asio keeps each socket's reactor state, ~160 bytes, in a
// free list for reuse, placed between the burst's coroutine frames): 10,000 idle clients
// left 48 MB of a 50 MB peak resident. jemalloc keeps objects of one size class together,
// so the burst's pages empty out and a purge returns them. Without jemalloc (sanitizer
// builds) this falls back to malloc_trim.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "async.h"

namespace sluice {

// Called with the count of connections whenever one ends.
void noteConnectionCount(size_t active);
// The same check without a connection ending (a daemon's periodic timer): the last
// connections of a burst may end within a second of the previous trim.
void trimMemoryIfDue();
// Hands freed memory back now: jemalloc's purge of every arena, else malloc_trim(0).
void handMemoryBack();
// "jemalloc 5.3.0-0-g…" or "glibc malloc 2.36".
std::string allocatorName();
// trimMemoryIfDue every `period` on `io` (a daemon's control loop) while it runs.
void trimMemoryPeriodically(asio::io_context& io, std::chrono::milliseconds period = std::chrono::seconds(2));

}  // namespace sluice
