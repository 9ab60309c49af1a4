#include "connection_limits.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "rate_limiter.h"

namespace sluice {
namespace {

using Verdict = ConnectionLimits::Verdict;

TEST(ConnectionLimitsTest, PerKeyCapLeavesOtherKeysServed) {
  ConnectionLimits limits(10, 3);
  std::vector<ConnectionLimits::Slot> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(limits.acquire("pod-a"));
    ASSERT_TRUE(held.back().admitted());
  }
  auto over = limits.acquire("pod-a");
  EXPECT_FALSE(over.admitted());
  EXPECT_EQ(over.verdict(), Verdict::OverKey);
  auto other = limits.acquire("pod-b");
  EXPECT_TRUE(other.admitted());
  EXPECT_EQ(limits.active(), 4u);
  EXPECT_EQ(limits.refusedKey(), 1u);
  held.pop_back();  // one of pod-a's ends: its next is admitted
  EXPECT_TRUE(limits.acquire("pod-a").admitted());
}

TEST(ConnectionLimitsTest, TotalCapAndRelease) {
  ConnectionLimits limits(2, 0);
  auto a = limits.acquire("a");
  auto b = limits.acquire("b");
  auto c = limits.acquire("c");
  EXPECT_TRUE(a.admitted() && b.admitted());
  EXPECT_EQ(c.verdict(), Verdict::OverTotal);
  a.release();
  a.release();  // idempotent
  EXPECT_EQ(limits.active(), 1u);
  auto moved = std::move(b);
  EXPECT_EQ(limits.active(), 1u);
  moved = limits.acquire("d");  // the slot moved over is released first
  EXPECT_EQ(limits.active(), 1u);
  EXPECT_EQ(limits.activeFor("b"), 0u);
  limits.setCaps(1, 0);
  EXPECT_EQ(limits.acquire("e").verdict(), Verdict::OverTotal);
}

TEST(ConnectionLimitsTest, ThreadsNeverExceedTheCap) {
  ConnectionLimits limits(100, 0);
  std::atomic<size_t> admitted{0};
  std::vector<std::thread> threads;
  std::vector<std::vector<ConnectionLimits::Slot>> held(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        auto slot = limits.acquire("k" + std::to_string(i % 7));
        if (slot.admitted()) {
          ++admitted;
          held[t].push_back(std::move(slot));
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 100u);
  EXPECT_EQ(limits.active(), 100u);
  held.clear();
  EXPECT_EQ(limits.active(), 0u);
}

TEST(RateLimiterTest, NPerSecondPerReasonThenASummary) {
  RateLimiter limiter(3);
  auto t = RateLimiter::Clock::now();
  int written = 0;
  for (int i = 0; i < 10; ++i) written += limiter.admit("host-not-allowed", t).log;
  EXPECT_EQ(written, 3);
  EXPECT_TRUE(limiter.admit("not-tls", t).log) << "reasons are limited apart";
  auto next = limiter.admit("host-not-allowed", t + std::chrono::milliseconds(1001));
  EXPECT_TRUE(next.log);
  EXPECT_EQ(next.suppressed, 7u);
  EXPECT_EQ(limiter.admit("host-not-allowed", t + std::chrono::milliseconds(1002)).suppressed, 0u);
}

}  // namespace
}  // namespace sluice
