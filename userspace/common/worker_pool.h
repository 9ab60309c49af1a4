// One event loop per core: each worker thread runs its own io_context, and each daemon
// gives every worker its own listener (SO_REUSEPORT) and its own connection state, so
// one busy connection or a slow handshake holds up only the connections of its worker
// while the kernel spreads new ones across all of them. Nothing on the data path is
// shared between workers except what is immutable (a rule set) or thread-safe.
#pragma once

#include <memory>
#include <thread>
#include <vector>

#include "async.h"
#include "cpu_budget.h"

namespace sluice {

class WorkerPool {
 public:
  // `count` 0: one worker per core the process may use (usableCpus).
  explicit WorkerPool(unsigned count) {
    if (count == 0) count = usableCpus();
    for (unsigned i = 0; i < count; ++i) {
      contexts_.push_back(std::make_unique<asio::io_context>(1));
      guards_.emplace_back(asio::make_work_guard(*contexts_.back()));
    }
  }
  ~WorkerPool() {
    stop();
    join();
  }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  size_t size() const { return contexts_.size(); }
  asio::io_context& io(size_t i) { return *contexts_.at(i); }

  void start() {
    for (auto& io : contexts_) threads_.emplace_back([context = io.get()] { context->run(); });
  }
  // Ends every loop at once: connections still open are dropped with their sockets.
  void stop() {
    guards_.clear();
    for (auto& io : contexts_) io->stop();
  }
  void join() {
    for (auto& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
    threads_.clear();
  }

 private:
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
};

}  // namespace sluice
