#include "logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace sluice {
namespace {

// Lines are formatted by the calling thread into a bounded ring; one writer thread takes
// every waiting line at once and writes them with one write(). After a write the writer
// lingers (kLinger) and is not woken by the lines that come meanwhile: it writes them all
// when the linger ends. So under load it wakes on its own timer, kLinger apart, instead of
// being woken by the I/O threads (a futex wake, and a context switch on the other core,
// for nearly every access record). A line that finds it idle (no line for a whole
// linger) wakes it at once, and so does a warning or an error, or a ring half full.
class BatchingStderrSink final : public spdlog::sinks::sink {
 public:
  static constexpr size_t kWriteBytes = 256 * 1024;
  static constexpr std::chrono::milliseconds kLinger{5};

  explicit BatchingStderrSink(size_t capacityLines) : ring_(capacityLines) {}

  // The writer is woken after the lock is let go, so it never wakes into a held mutex.
  void log(const spdlog::details::log_msg& msg) override {
    bool wake = false;
    {
      std::lock_guard lock(mutex_);
      wake = push(msg);
      if (!wake && msg.level >= spdlog::level::warn && !stopping_) {
        urgent_ = true;  // ends a linger
        wake = true;
      }
    }
    if (wake) wake_.notify_one();
  }
  void flush() override {}  // the writer writes as soon as it is woken
  void set_pattern(const std::string& pattern) override {
    set_formatter(std::make_unique<spdlog::pattern_formatter>(pattern));
  }
  void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
    std::lock_guard lock(mutex_);
    formatter_ = std::move(formatter);
  }

  void start() {
    writer_ = std::thread([this] { run(); });
  }
  // Writes every waiting line, then stops the writer; later lines are written at once.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      if (!writer_.joinable()) return;
      stopping_ = true;
    }
    wake_.notify_all();
    writer_.join();
  }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  // With mutex_ held; true when the writer must be woken.
  bool push(const spdlog::details::log_msg& msg) {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    if (stopping_) {  // the writer is gone (or going): write at once
      writeAll(formatted.data(), formatted.size());
      return false;
    }
    // The lines the writer holds count against the bound, as lines in the ring do.
    if (count_ + inFlight_ >= ring_.size()) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      if (count_ == 0) return false;       // all held by the writer: the new line is the one dropped
      head_ = (head_ + 1) % ring_.size();  // drop the oldest waiting line
      --count_;
    }
    ring_[(head_ + count_) % ring_.size()].assign(formatted.data(), formatted.size());
    ++count_;
    return (idle_ && count_ == 1) || (!idle_ && count_ == ring_.size() / 2);
  }

  void run() {
    std::string out;
    std::unique_lock lock(mutex_);
    for (;;) {
      idle_ = true;
      wake_.wait(lock, [this] { return count_ > 0 || stopping_; });
      idle_ = false;
      if (count_ == 0 && stopping_) return;
      urgent_ = false;
      out.clear();
      size_t taken = 0;
      while (count_ > 0 && out.size() < kWriteBytes) {
        std::string& line = ring_[head_];
        out.append(line);
        if (line.capacity() > 4096) std::string().swap(line);  // keep no outsized line
        head_ = (head_ + 1) % ring_.size();
        --count_;
        ++taken;
      }
      inFlight_ = taken;
      const bool drained = count_ == 0;
      lock.unlock();
      writeAll(out.data(), out.size());
      lock.lock();
      inFlight_ = 0;
      // A batch cut at kWriteBytes leaves lines waiting: write them now, not after a linger.
      if (drained && count_ < ring_.size() / 2) {
        wake_.wait_for(lock, kLinger, [this] { return stopping_ || urgent_ || count_ >= ring_.size() / 2; });
      }
    }
  }
  static void writeAll(const char* data, size_t size) {
    while (size > 0) {
      ssize_t n = ::write(STDERR_FILENO, data, size);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;  // stderr closed or broken: nothing else to tell
      }
      data += n;
      size -= static_cast<size_t>(n);
    }
  }

  std::mutex mutex_;
  std::unique_ptr<spdlog::formatter> formatter_ = std::make_unique<spdlog::pattern_formatter>();
  std::vector<std::string> ring_;
  size_t head_ = 0;
  size_t count_ = 0;
  size_t inFlight_ = 0;
  bool idle_ = false;
  bool urgent_ = false;  // a warning or error waits: the linger ends now
  bool stopping_ = false;
  std::atomic<uint64_t> dropped_{0};
  std::condition_variable wake_;
  std::thread writer_;
};

std::shared_ptr<BatchingStderrSink> batchingSink;

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
    logger->flush_on(spdlog::level::trace);
  } else {
    if (!batchingSink) {
      batchingSink = std::make_shared<BatchingStderrSink>(queueLines);
      batchingSink->start();
    }
    logger = std::make_shared<spdlog::logger>("sluice", batchingSink);
  }
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
  logger->set_level(parsed);
  spdlog::set_default_logger(logger);
  if (queueLines != 0 && !reporter) {
    reporter = new DropReporter();
    reporter->start();
  }
}

uint64_t droppedLogLines() {
  return batchingSink ? batchingSink->dropped() : 0;
}

void shutdownLogging() {
  if (reporter) {
    reporter->stop();
    delete reporter;
    reporter = nullptr;
  }
  if (batchingSink) batchingSink->stop();  // its last lines reach stderr; later ones go at once
  spdlog::shutdown();
}

}  // namespace sluice
