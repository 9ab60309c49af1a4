// Per-reason rate limits for log lines an attacker can provoke (denies, refusals): up to
// N lines per second per reason; the rest of that second are counted, and the next line
// of the reason that is let through is preceded by one "suppressed K" summary. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace sluice {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  struct Admission {
    bool log = false;         // write this line
    uint64_t suppressed = 0;  // lines of this reason dropped since the last one written
  };

  explicit RateLimiter(uint32_t perSecond) : perSecond_(perSecond) {}

  Admission admit(std::string_view reason, Clock::time_point now = Clock::now()) {
    std::lock_guard lock(mutex_);
    auto it = reasons_.find(reason);
    if (it == reasons_.end()) {
      if (reasons_.size() >= kMaxReasons) reasons_.clear();  // reasons are a small fixed set; a bound anyway
      it = reasons_.emplace(std::string(reason), Window{now, 0, 0}).first;
    }
    Window& w = it->second;
    if (now - w.start >= std::chrono::seconds(1)) {
      w.start = now;
      w.written = 0;
    }
    if (w.written >= perSecond_) {
      ++w.suppressed;
      return {};
    }
    ++w.written;
    Admission admission{true, w.suppressed};
    w.suppressed = 0;
    return admission;
  }

 private:
  static constexpr size_t kMaxReasons = 256;
  struct Window {
    Clock::time_point start;
    uint32_t written;
    uint64_t suppressed;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  uint32_t perSecond_;
  std::mutex mutex_;
  std::unordered_map<std::string, Window, Hash, std::equal_to<>> reasons_;
};

}  // namespace sluice
