#include "logging.h"

#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace sluice {
namespace {

// Reports drops from its own thread (the I/O threads never wait for it).
class DropReporter {
 public:
  void start() {
    thread_ = std::thread([this] { run(); });
  }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    uint64_t reported = 0;
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, std::chrono::seconds(5), [this] { return stopping_; })) {
      uint64_t dropped = droppedLogLines();
      if (dropped > reported) {
        spdlog::warn("log: dropped {} lines (queue full; total {})", dropped - reported, dropped);
        reported = dropped;
      }
    }
  }
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
};

DropReporter* reporter = nullptr;

}  // namespace

void setupLogging(const std::string& level, size_t queueLines) {
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    throw std::runtime_error("unknown log level '" + level + "' (trace, debug, info, warn, error)");
  }
  std::shared_ptr<spdlog::logger> logger;
  if (queueLines == 0) {
    logger = std::make_shared<spdlog::logger>("sluice", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  } else {
    spdlog::init_thread_pool(queueLines, 1);
    logger =
        std::make_shared<spdlog::async_logger>("sluice", std::make_shared<spdlog::sinks::stderr_sink_mt>(),
                                               spdlog::thread_pool(), spdlog::async_overflow_policy::overrun_oldest);
  }
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::trace);  // tests and operators read the log live (on the writer thread)
  spdlog::set_default_logger(logger);
  if (queueLines != 0 && !reporter) {
    reporter = new DropReporter();
    reporter->start();
  }
}

uint64_t droppedLogLines() {
  auto pool = spdlog::thread_pool();
  return pool ? pool->overrun_counter() : 0;
}

void shutdownLogging() {
  if (reporter) {
    reporter->stop();
    delete reporter;
    reporter = nullptr;
  }
  spdlog::shutdown();
}

}  // namespace sluice
