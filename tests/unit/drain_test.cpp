#include "drain.h"

#include <gtest/gtest.h>

#include <optional>
#include <thread>

#include "active_flows.h"

namespace sluice {
namespace {

using namespace std::chrono_literals;

TEST(ActiveFlowsTest, CountsWhileRegisteredAndResetsOnlyLiveFlowsOnTheirLoop) {
  asio::io_context worker;
  ActiveFlows flows;
  int resetA = 0, resetB = 0;
  std::optional<ActiveFlows::Flow> a(flows.track(worker.get_executor()));
  std::optional<ActiveFlows::Flow> b(flows.track(worker.get_executor()));
  a->onReset([&] { ++resetA; });
  b->onReset([&] { ++resetB; });
  EXPECT_EQ(flows.count(), 2u);
  EXPECT_EQ(flows.resetAll(), 2u);
  EXPECT_EQ(resetA + resetB, 0);  // posted to the flows' loop, not run here
  b.reset();                      // b ends before its reset runs: not reset, not counted
  EXPECT_EQ(flows.count(), 1u);
  worker.run();
  EXPECT_EQ(resetA, 1);
  EXPECT_EQ(resetB, 0);
  EXPECT_TRUE(a->resetByDrain());
  EXPECT_EQ(flows.resetDone(), 1u);
  flows.resetAll();  // a flow is reset once
  worker.restart();
  worker.run();
  EXPECT_EQ(resetA, 1);
  a.reset();
  EXPECT_EQ(flows.count(), 0u);
}

TEST(ActiveFlowsTest, ManyThreadsRegisterAndEnd) {
  ActiveFlows flows;
  asio::io_context io;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        auto flow = flows.track(io.get_executor());
        flow.onReset([] {});
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(flows.count(), 0u);
}

struct DrainRun {
  asio::io_context control;
  ActiveFlows flows;
  DrainStatus status;
  bool stoppedAccepting = false;
  bool finished = false;
};

TEST(DrainTest, FinishesWhenTheLastFlowEnds) {
  DrainRun run;
  std::optional<ActiveFlows::Flow> flow(run.flows.track(run.control.get_executor()));
  bool reset = false;
  flow->onReset([&] { reset = true; });
  Drain drain(run.control, 10s, run.flows, nullptr, run.status,
              {[&] { run.stoppedAccepting = true; }, nullptr, [&] { run.finished = true; }});
  drain.onSignal(15);
  EXPECT_TRUE(run.stoppedAccepting);
  EXPECT_TRUE(run.status.draining);
  asio::steady_timer end(run.control, 100ms);
  end.async_wait([&](auto) { flow.reset(); });
  const auto started = std::chrono::steady_clock::now();
  run.control.run_for(5s);
  EXPECT_TRUE(run.finished);
  EXPECT_FALSE(reset);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  EXPECT_EQ(run.status.resetAtDeadline, 0u);
}

TEST(DrainTest, ResetsTheRestAtTheDeadline) {
  DrainRun run;
  std::optional<ActiveFlows::Flow> flow(run.flows.track(run.control.get_executor()));
  flow->onReset([&] { flow.reset(); });  // a reset flow ends (its sockets closed)
  Drain drain(run.control, 200ms, run.flows, nullptr, run.status, {nullptr, nullptr, [&] { run.finished = true; }});
  drain.onSignal(15);
  run.control.run_for(1500ms);
  EXPECT_FALSE(flow.has_value());
  EXPECT_TRUE(run.finished);
  EXPECT_EQ(run.status.resetAtDeadline, 1u);
}

TEST(DrainTest, SecondSignalAndZeroTimeoutResetAtOnce) {
  for (bool second : {true, false}) {
    DrainRun run;
    std::optional<ActiveFlows::Flow> flow(run.flows.track(run.control.get_executor()));
    flow->onReset([&] { flow.reset(); });
    Drain drain(run.control, second ? 3600s : 0s, run.flows, nullptr, run.status,
                {nullptr, nullptr, [&] { run.finished = true; }});
    drain.onSignal(15);
    if (second) drain.onSignal(2);
    run.control.run_for(500ms);
    EXPECT_TRUE(run.finished) << (second ? "second signal" : "timeout 0");
    EXPECT_EQ(run.status.resetAtDeadline, 1u);
  }
}

TEST(DrainTest, ClosesCarriersAfterTheLastFlowAndWaitsForThem) {
  DrainRun run;
  ActiveFlows tunnels;
  std::optional<ActiveFlows::Flow> flow(run.flows.track(run.control.get_executor()));
  std::optional<ActiveFlows::Flow> tunnel(tunnels.track(run.control.get_executor()));
  int closeCalls = 0;
  Drain drain(run.control, 10s, run.flows, &tunnels, run.status,
              {nullptr, [&] { ++closeCalls; }, [&] { run.finished = true; }});
  drain.onSignal(15);
  run.control.run_for(100ms);
  EXPECT_EQ(closeCalls, 0);  // a flow is still running: the tunnel stays
  flow.reset();
  run.control.run_for(100ms);
  EXPECT_EQ(closeCalls, 1);
  EXPECT_FALSE(run.finished);  // the tunnel is still closing
  tunnel.reset();
  run.control.run_for(200ms);
  EXPECT_TRUE(run.finished);
  EXPECT_EQ(closeCalls, 1);
}

TEST(DrainTest, DoesNotWaitLongForATunnelThatStaysOpen) {
  DrainRun run;
  ActiveFlows tunnels;
  auto tunnel = tunnels.track(run.control.get_executor());
  Drain drain(run.control, 60s, run.flows, &tunnels, run.status, {nullptr, nullptr, [&] { run.finished = true; }});
  drain.onSignal(15);
  const auto started = std::chrono::steady_clock::now();
  run.control.run_for(5s);
  EXPECT_TRUE(run.finished);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
}

}  // namespace
}  // namespace sluice
