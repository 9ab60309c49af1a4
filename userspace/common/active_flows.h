// The flows a daemon carries now, across every worker loop: a drain waits for their
// count to reach zero and, at its deadline, resets those left (each on its own loop).
// A flow registers for as long as its coroutine runs and says how to reset it (linger-0
// RST of its sockets, RST_STREAM of its tunnel stream); the reset runs on the flow's own
// loop and only while the flow is still registered.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "async.h"

namespace sluice {

class ActiveFlows {
  struct Entry {
    asio::any_io_executor executor;
    std::function<void()> reset;  // touched only on `executor`'s thread
    bool live = true;
    bool resetByDrain = false;
  };

 public:
  // One flow's registration (RAII), made and used on the flow's own loop.
  class Flow {
   public:
    Flow() = default;
    Flow(Flow&& other) noexcept : owner_(other.owner_), id_(other.id_), entry_(std::move(other.entry_)) {
      other.owner_ = nullptr;
    }
    Flow& operator=(Flow&&) = delete;
    Flow(const Flow&) = delete;
    ~Flow() { end(); }
    // What resets this flow now; replaces the previous one (the sockets change hands as
    // the flow goes from inspection to relay). Null: nothing to reset.
    void onReset(std::function<void()> reset) {
      if (entry_) entry_->reset = std::move(reset);
    }
    // The drain deadline reset this flow (its result says so).
    bool resetByDrain() const { return entry_ && entry_->resetByDrain; }
    void end();

   private:
    friend class ActiveFlows;
    Flow(ActiveFlows* owner, uint64_t id, std::shared_ptr<Entry> entry)
        : owner_(owner), id_(id), entry_(std::move(entry)) {}
    ActiveFlows* owner_ = nullptr;
    uint64_t id_ = 0;
    std::shared_ptr<Entry> entry_;
  };

  Flow track(asio::any_io_executor executor);
  size_t count() const { return count_.load(std::memory_order_relaxed); }
  // Resets every flow on its own loop (asynchronously); returns how many were asked.
  size_t resetAll();
  // Flows the resets reached (a flow that ended first is not counted).
  uint64_t resetDone() const { return resetDone_.load(std::memory_order_relaxed); }

 private:
  mutable std::mutex mutex_;
  std::unordered_map<uint64_t, std::shared_ptr<Entry>> entries_;
  uint64_t nextId_ = 1;
  std::atomic<size_t> count_{0};
  std::atomic<uint64_t> resetDone_{0};
};

}  // namespace sluice
