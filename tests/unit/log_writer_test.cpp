// The daemons' log writer (common/logging): lines from several threads reach stderr
// whole, once each, in each thread's order, through its queue and its linger; a line
// that does not is one the queue dropped and counted.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "logging.h"

namespace sluice {
namespace {

// Points fd 2 at a file for the life of the object.
class CapturedStderr {
 public:
  CapturedStderr() : path_(::testing::TempDir() + "log_writer_test." + std::to_string(::getpid())) {
    std::fflush(stderr);
    saved_ = ::dup(STDERR_FILENO);
    FILE* file = std::fopen(path_.c_str(), "w");
    ::dup2(::fileno(file), STDERR_FILENO);
    std::fclose(file);
  }
  ~CapturedStderr() {
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    std::remove(path_.c_str());
  }
  std::vector<std::string> lines() const {
    std::ifstream in(path_);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }

 private:
  std::string path_;
  int saved_ = -1;
};

TEST(LogWriterTest, EveryLineIsWrittenOnceInOrderOrCountedAsDropped) {
  CapturedStderr captured;
  setupLogging("info", 256);  // a small queue: the bursts below overflow it
  constexpr int kThreads = 4;
  constexpr int kLines = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < kLines; ++i) {
        // Bursts, then quiet spells longer than the linger: both ways of waking the writer.
        if (i % 5000 == 4999) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        spdlog::info("writer-test thread={} line={}", t, i);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  // A line after a quiet spell (longer than the linger) is written without waiting for
  // another line or for shutdown: it wakes the writer.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  spdlog::info("writer-test after-quiet");
  bool sawAfterQuiet = false;
  for (int i = 0; i < 500 && !sawAfterQuiet; ++i) {  // at most 5 s
    for (const auto& line : captured.lines()) sawAfterQuiet |= line.ends_with(" info writer-test after-quiet");
    if (!sawAfterQuiet) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(sawAfterQuiet) << "a line after a quiet spell stayed queued";
  spdlog::warn("writer-test last");
  shutdownLogging();
  setupLogging("info", 0);  // spdlog::shutdown() dropped the default logger; later tests log

  const std::regex shape(R"(^\S+ info writer-test thread=(\d) line=(\d+)$)");
  std::map<int, int> lastLine;
  int written = 0;
  bool sawLast = false;
  for (const auto& line : captured.lines()) {
    std::smatch m;
    if (std::regex_match(line, m, shape)) {
      const int thread = std::stoi(m[1]);
      const int number = std::stoi(m[2]);
      auto last = lastLine.find(thread);
      if (last != lastLine.end()) {
        EXPECT_GT(number, last->second) << "thread " << thread << " out of order: " << line;
      }
      lastLine[thread] = number;
      ++written;
    } else if (line.ends_with(" warning writer-test last")) {
      sawLast = true;
    } else if (line.ends_with(" info writer-test after-quiet")) {
    } else {
      // The only other line there may be: the drop reporter's.
      EXPECT_NE(line.find("log: dropped"), std::string::npos) << "a line not whole: " << line;
    }
  }
  EXPECT_TRUE(sawLast) << "the line logged just before shutdown was not written";
  EXPECT_GT(written, 0);
  EXPECT_EQ(static_cast<uint64_t>(written) + droppedLogLines(), static_cast<uint64_t>(kThreads) * kLines);
}

}  // namespace
}  // namespace sluice
