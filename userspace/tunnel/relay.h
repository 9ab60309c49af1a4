// Copies bytes both ways between two streams until both directions have ended, passing
// each end of stream on as a half-close. An error in either direction ends both.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "async.h"
#include "byte_stream.h"

namespace sluice {

struct RelayResult {
  uint64_t bytesAtoB = 0;
  uint64_t bytesBtoA = 0;
  boost::system::error_code errorAtoB;  // empty when that direction ended cleanly
  boost::system::error_code errorBtoA;
  bool idleTimeout = false;  // ended because neither direction moved a byte for too long
  std::chrono::steady_clock::time_point lastActivity = std::chrono::steady_clock::now();
  // When the first byte from b arrived (connect-to-first-byte); epoch if none did.
  std::chrono::steady_clock::time_point firstByteBtoA{};
  bool clean() const { return !errorAtoB && !errorBtoA && !idleTimeout; }
  std::string outcome() const {
    if (idleTimeout) return "idle-timeout";
    if (clean()) return "ok";
    return "relay-error:" + (errorAtoB ? errorAtoB : errorBtoA).message();
  }
};

inline constexpr size_t kRelayBufferBytes = 65536;

// Relay buffers are lent only while bytes are in flight, so an idle connection holds
// none: memory follows the active connections, not the open ones. One pool per thread
// (each daemon runs its connections on one thread).
class BufferPool {
 public:
  class Lease {
   public:
    explicit Lease(std::unique_ptr<uint8_t[]> buffer) : buffer_(std::move(buffer)) {}
    Lease(Lease&&) noexcept = default;
    Lease& operator=(Lease&& other) noexcept {
      if (this != &other) {
        if (buffer_) local().give(std::move(buffer_));
        buffer_ = std::move(other.buffer_);
      }
      return *this;
    }
    ~Lease() {
      if (buffer_) local().give(std::move(buffer_));
    }
    std::span<uint8_t> span() { return {buffer_.get(), kRelayBufferBytes}; }

   private:
    std::unique_ptr<uint8_t[]> buffer_;
  };
  static BufferPool& local() {
    thread_local BufferPool pool;
    return pool;
  }
  Lease take() {
    if (free_.empty()) {
      auto buffer = std::make_unique_for_overwrite<uint8_t[]>(kRelayBufferBytes);
      ++lent_;
      return Lease(std::move(buffer));
    }
    auto buffer = std::move(free_.back());
    free_.pop_back();
    ++lent_;
    return Lease(std::move(buffer));
  }
  // Buffers this thread's pool has lent and not had back (for tests: a lease goes back to
  // the pool of the thread that ends it, which is the thread that took it here).
  size_t lent() const { return lent_; }

 private:
  void give(std::unique_ptr<uint8_t[]> buffer) {
    --lent_;
    if (free_.size() < kMaxFree) free_.push_back(std::move(buffer));
  }
  static constexpr size_t kMaxFree = 64;
  std::vector<std::unique_ptr<uint8_t[]>> free_;
  size_t lent_ = 0;
};

// Received bytes a stream hands over whole (TunnelStream::takeReceived): pooled chunks,
// [begin, end) unread. The relay writes them from there with one gathered write and
// drops them: no copy into a relay buffer.
// Not an aggregate on purpose: g++ 12 destroyed an aggregate-initialized temporary that
// owns a buffer twice when it was made inside a co_await expression (the buffer went
// back to the pool twice); a constructor avoids that.
struct ReceivedChunk {
  explicit ReceivedChunk(BufferPool::Lease lease, size_t first = 0, size_t last = 0)
      : buffer(std::move(lease)), begin(first), end(last) {}
  BufferPool::Lease buffer;
  size_t begin = 0;
  size_t end = 0;
};

template <class From, class To>
concept HandsOverChunks = requires(From& from, To& to, std::vector<ReceivedChunk>& chunks,
                                   std::vector<asio::const_buffer>& gather) {
  from.takeReceived(chunks);
  to.writeGathered(gather);
};

// The zero-copy form of pumpBytes for a source that hands over its chunks.
template <class From, class To>
awaitable<boost::system::error_code> pumpChunks(From& from, To& to, uint64_t& count,
                                                std::chrono::steady_clock::time_point* lastActivity,
                                                std::chrono::steady_clock::time_point* firstByte) {
  std::vector<ReceivedChunk> chunks;
  std::vector<asio::const_buffer> gather;
  while (true) {
    IoResult read = co_await from.takeReceived(chunks);
    if (read.error == asio::error::eof) co_return co_await to.shutdownSend();
    if (read.error) co_return read.error;
    if (firstByte && count == 0) *firstByte = std::chrono::steady_clock::now();
    gather.clear();
    for (auto& chunk : chunks) gather.emplace_back(chunk.buffer.span().data() + chunk.begin, chunk.end - chunk.begin);
    auto error = co_await to.writeGathered(gather);
    chunks.clear();  // the buffers go back to the pool
    if (error) co_return error;
    count += read.bytes;
    *lastActivity = std::chrono::steady_clock::now();
  }
}

// How the relay reads for a destination `To`: one that frames its bytes (a tunnel stream)
// names the read size that makes whole frames and the room to leave before the bytes, and
// takes the buffer itself (writeChunk) to write each frame's header in front of them.
template <class To>
struct RelayLayout {
  static constexpr bool kTakesChunks = requires(To & to, std::shared_ptr<ReceivedChunk> chunk) {
    to.writeChunk(std::move(chunk));
  };
  static constexpr size_t kHeadroom = [] {
    if constexpr (requires { To::kWriteHeadroom; }) return To::kWriteHeadroom;
    return size_t{0};
  }();
  static constexpr size_t kReadBytes = [] {
    if constexpr (requires { To::kWriteChunkBytes; }) return To::kWriteChunkBytes;
    return kRelayBufferBytes;
  }();
  static_assert(kHeadroom + kReadBytes <= kRelayBufferBytes);
};

template <class From, class To>
awaitable<boost::system::error_code> pumpBytes(From& from, To& to, uint64_t& count,
                                               std::chrono::steady_clock::time_point* lastActivity,
                                               std::chrono::steady_clock::time_point* firstByte = nullptr) {
  if constexpr (HandsOverChunks<From, To>) {
    co_return co_await pumpChunks(from, to, count, lastActivity, firstByte);
  }
  using Layout = RelayLayout<To>;
  bool filledLast = false;  // the last read filled its buffer: more bytes likely wait
  while (true) {
    // Wait with no buffer; borrow one only to move the bytes that are there. After a
    // read that filled its buffer, read first: in a burst the wait would find the
    // socket ready anyway, after an epoll_ctl to re-arm it and a turn of the event loop.
    std::optional<BufferPool::Lease> lease;
    std::span<uint8_t> buffer;
    auto borrow = [&] {
      lease.emplace(BufferPool::local().take());
      buffer = lease->span().subspan(Layout::kHeadroom, Layout::kReadBytes);
    };
    IoResult read;
    bool haveRead = false;
    if constexpr (requires { from.tryReadSome(buffer); }) {
      if (filledLast) {
        borrow();
        read = from.tryReadSome(buffer);
        haveRead = read.error != asio::error::would_block;
        if (!haveRead) lease.reset();
      }
    }
    if (!haveRead) {
      if (auto waited = co_await from.waitReadable()) co_return waited;
      borrow();
      read = co_await from.readSome(buffer);
    }
    if (read.error == asio::error::eof) co_return co_await to.shutdownSend();
    if (read.error) co_return read.error;
    filledLast = read.bytes == buffer.size();
    if (firstByte && count == 0) *firstByte = std::chrono::steady_clock::now();
    boost::system::error_code error;
    if constexpr (Layout::kTakesChunks) {
      // Made outside the co_await (see ReceivedChunk).
      auto chunk =
          std::make_shared<ReceivedChunk>(std::move(*lease), Layout::kHeadroom, Layout::kHeadroom + read.bytes);
      error = co_await to.writeChunk(std::move(chunk));
    } else {
      error = co_await to.writeAll(std::span<const uint8_t>(buffer.data(), read.bytes));
    }
    if (error) co_return error;
    count += read.bytes;
    *lastActivity = std::chrono::steady_clock::now();
  }
}

inline awaitable<void> signalAfter(awaitable<void> work, Signal& done) {
  co_await std::move(work);
  done.set();
}

template <class A, class B>
awaitable<void> pumpThenSignal(A& a, B& b, RelayResult& result, Signal& done) {
  result.errorAtoB = co_await pumpBytes(a, b, result.bytesAtoB, &result.lastActivity);
  if (result.errorAtoB) {
    a.abort();
    b.abort();
  }
  done.set();
}

// Ends the relay when no byte has moved either way for `idle`: a quiet peer must not
// hold a connection (and its buffers) forever. One timer per connection, not per read,
// and no coroutine of its own: an idle flow holds just the timer's pending wait (a
// spawned coroutine cost it three frames, about 700 bytes).
template <class A, class B>
class IdleWatchdog {
 public:
  IdleWatchdog(asio::any_io_executor executor, A& a, B& b, RelayResult& result, std::chrono::milliseconds idle)
      : timer_(executor), done_(executor), a_(a), b_(b), result_(result), idle_(idle) {
    arm();
  }
  IdleWatchdog(const IdleWatchdog&) = delete;
  IdleWatchdog& operator=(const IdleWatchdog&) = delete;
  // Returns once the last wait has completed: it refers to this object.
  awaitable<void> stop() {
    finished_ = true;
    timer_.cancel();
    co_await done_.wait();
  }

 private:
  void arm() {
    timer_.expires_at(result_.lastActivity + idle_);
    timer_.async_wait([this](const boost::system::error_code&) { fired(); });
  }
  void fired() {
    if (finished_) {
      done_.set();
    } else if (std::chrono::steady_clock::now() - result_.lastActivity >= idle_) {
      result_.idleTimeout = true;
      a_.abort();
      b_.abort();
      done_.set();
    } else {
      arm();  // bytes moved since: wait for the rest of the idle time
    }
  }

  asio::steady_timer timer_;
  Signal done_;
  A& a_;
  B& b_;
  RelayResult& result_;
  std::chrono::milliseconds idle_;
  bool finished_ = false;
};

// `a` and `b` must outlive the returned awaitable, which always waits for both
// directions (and the watchdog) before it completes.
template <class A, class B>
awaitable<RelayResult> relayBoth(A& a, B& b, std::chrono::milliseconds idle) {
  auto executor = co_await asio::this_coro::executor;
  RelayResult result;
  Signal aToBDone(executor);
  IdleWatchdog<A, B> watchdog(executor, a, b, result, idle);
  // Named coroutines rather than lambdas (g++ 12 lambda-coroutine capture bugs).
  asio::co_spawn(executor, pumpThenSignal(a, b, result, aToBDone), asio::detached);
  result.errorBtoA = co_await pumpBytes(b, a, result.bytesBtoA, &result.lastActivity, &result.firstByteBtoA);
  if (result.errorBtoA) {
    a.abort();
    b.abort();
  }
  co_await aToBDone.wait();
  co_await watchdog.stop();
  co_return result;
}

}  // namespace sluice
