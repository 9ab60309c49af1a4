// Copies bytes both ways between two streams until both directions have ended, passing
// each end of stream on as a half-close. An error in either direction ends both.
#pragma once

#include <cstdint>
#include <vector>

#include "async.h"
#include "byte_stream.h"

namespace sluice {

struct RelayResult {
  uint64_t bytesAtoB = 0;
  uint64_t bytesBtoA = 0;
  boost::system::error_code errorAtoB;  // empty when that direction ended cleanly
  boost::system::error_code errorBtoA;
  bool clean() const { return !errorAtoB && !errorBtoA; }
};

inline constexpr size_t kRelayBufferBytes = 16384;

template <class From, class To>
awaitable<boost::system::error_code> pumpBytes(From& from, To& to, uint64_t& count) {
  std::vector<uint8_t> buffer(kRelayBufferBytes);
  while (true) {
    IoResult read = co_await from.readSome(buffer);
    if (read.error == asio::error::eof) co_return co_await to.shutdownSend();
    if (read.error) co_return read.error;
    auto error = co_await to.writeAll(std::span<const uint8_t>(buffer.data(), read.bytes));
    if (error) co_return error;
    count += read.bytes;
  }
}

template <class A, class B>
awaitable<void> pumpThenSignal(A& a, B& b, RelayResult& result, Signal& done) {
  result.errorAtoB = co_await pumpBytes(a, b, result.bytesAtoB);
  if (result.errorAtoB) {
    a.abort();
    b.abort();
  }
  done.set();
}

// `a` and `b` must outlive the returned awaitable, which always waits for both
// directions before it completes.
template <class A, class B>
awaitable<RelayResult> relayBoth(A& a, B& b) {
  auto executor = co_await asio::this_coro::executor;
  RelayResult result;
  Signal aToBDone(executor);
  // A named coroutine rather than a lambda (g++ 12 lambda-coroutine capture bugs).
  asio::co_spawn(executor, pumpThenSignal(a, b, result, aToBDone), asio::detached);
  result.errorBtoA = co_await pumpBytes(b, a, result.bytesBtoA);
  if (result.errorBtoA) {
    a.abort();
    b.abort();
  }
  co_await aToBDone.wait();
  co_return result;
}

}  // namespace sluice
