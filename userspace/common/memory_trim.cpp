#include "memory_trim.h"

#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "spawn.h"

namespace sluice {
namespace {

std::atomic<size_t> peakSinceTrim{0};
std::atomic<int64_t> lastTrimMs{0};
std::atomic<size_t> lastActive{0};

awaitable<void> trimEvery(std::chrono::milliseconds period) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (true) {
    timer.expires_after(period);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    trimMemoryIfDue();
  }
}

// jemalloc's control interface, if the process runs on jemalloc (the daemons link it;
// a sanitizer build does not).
using Mallctl = int (*)(const char*, void*, size_t*, void*, size_t);
Mallctl mallctlFunction() {
  static const Mallctl function = reinterpret_cast<Mallctl>(dlsym(RTLD_DEFAULT, "mallctl"));
  return function;
}

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void noteConnectionCount(size_t active) {
  lastActive.store(active, std::memory_order_relaxed);
  size_t peak = peakSinceTrim.load(std::memory_order_relaxed);
  // The peak is the count before this connection ended.
  while (active + 1 > peak && !peakSinceTrim.compare_exchange_weak(peak, active + 1)) {
  }
  trimMemoryIfDue();
}

void trimMemoryIfDue() {
  const size_t active = lastActive.load(std::memory_order_relaxed);
  const size_t peak = peakSinceTrim.load(std::memory_order_relaxed);
  // Worth it only after a burst: at least 256 connections gone and half of the peak.
  if (peak < 256 || active > peak / 2) return;
  int64_t now = nowMs();
  int64_t last = lastTrimMs.load(std::memory_order_relaxed);
  if (now - last < 1000 || !lastTrimMs.compare_exchange_strong(last, now)) return;
  peakSinceTrim.store(active, std::memory_order_relaxed);
  handMemoryBack();
}

void handMemoryBack() {
  if (Mallctl mallctl = mallctlFunction()) {
    // Every arena's unused dirty pages back to the system now (MALLCTL_ARENAS_ALL).
    mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);
    return;
  }
  malloc_trim(0);
}

std::string allocatorName() {
  if (Mallctl mallctl = mallctlFunction()) {
    const char* version = nullptr;
    size_t size = sizeof(version);
    if (mallctl("version", &version, &size, nullptr, 0) == 0 && version) {
      return std::string("jemalloc ") + version;
    }
    return "jemalloc";
  }
  return std::string("glibc malloc ") + gnu_get_libc_version();
}

void trimMemoryPeriodically(asio::io_context& io, std::chrono::milliseconds period) {
  spdlog::info("memory: allocator {}; freed memory is handed back after a burst of connections", allocatorName());
  asio::co_spawn(io, trimEvery(period), logEscapedException("memory trim"));
}

}  // namespace sluice
