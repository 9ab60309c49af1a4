// The relay between two plain sockets: it holds a buffer only while bytes are in
// flight (one is out on lease while the far side does not read), none once the flow is
// idle, though the relay is still running; every byte arrives, in order.
#include "relay.h"

#include <gtest/gtest.h>

#include <csignal>
#include <functional>
#include <string>

#include "byte_stream.h"
#include "loopback_pair.h"

namespace sluice {
namespace {

using boost::system::error_code;
using test::connectPair;

std::string pattern(size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>((i * 17 + 3) % 251);
  return out;
}

awaitable<void> relayInto(TcpStream& a, TcpStream& b, RelayResult& result, bool& done) {
  result = co_await relayBoth(a, b, std::chrono::seconds(30));
  done = true;
}

awaitable<void> pause(std::chrono::milliseconds duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  co_await timer.async_wait(use_awaitable);
}

TEST(RelayTest, IdleRelayHoldsNoBuffer) {
  std::signal(SIGPIPE, SIG_IGN);  // as the daemons do
  asio::io_context io;
  const std::string sent = pattern(8u << 20);  // more than both sockets' buffers hold
  std::string got;
  size_t lentWhileStalled = 0, lentWhenIdle = 99, lentAfter = 99;
  RelayResult result;
  bool relayDone = false, testDone = false;
  auto test = [&]() -> awaitable<void> {
    const size_t lentBefore = BufferPool::local().lent();
    std::unique_ptr<TcpStream> appSide, originSide;
    tcp::socket app(io), origin(io);
    co_await connectPair(appSide, app);
    co_await connectPair(originSide, origin);
    asio::co_spawn(io, relayInto(*appSide, *originSide, result, relayDone), asio::detached);
    // The app sends more than the path holds; the origin does not read yet: the relay
    // waits to write, its buffer on lease.
    asio::co_spawn(io, asio::async_write(app, asio::buffer(sent), use_awaitable), asio::detached);
    co_await pause(std::chrono::milliseconds(200));
    lentWhileStalled = BufferPool::local().lent() - lentBefore;
    got.resize(sent.size());
    co_await asio::async_read(origin, asio::buffer(got), use_awaitable);
    co_await pause(std::chrono::milliseconds(50));
    // Every byte through, both sockets open, nothing moving: no buffer held.
    lentWhenIdle = BufferPool::local().lent() - lentBefore;
    EXPECT_FALSE(relayDone);
    error_code ec;
    app.shutdown(tcp::socket::shutdown_send, ec);
    origin.shutdown(tcp::socket::shutdown_send, ec);
    for (int i = 0; i < 100 && !relayDone; ++i) co_await pause(std::chrono::milliseconds(10));
    lentAfter = BufferPool::local().lent() - lentBefore;
    testDone = true;
  };
  asio::co_spawn(io, test(), [&](std::exception_ptr e) {
    if (e) ADD_FAILURE() << "test coroutine threw";
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!testDone && std::chrono::steady_clock::now() < deadline) io.run_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(testDone) << "timed out";
  EXPECT_EQ(lentWhileStalled, 1u) << "the relay waiting to write holds its one buffer";
  EXPECT_EQ(lentWhenIdle, 0u) << "an idle relay holds a buffer";
  EXPECT_TRUE(relayDone);
  EXPECT_TRUE(result.clean()) << result.outcome();
  EXPECT_EQ(result.bytesAtoB, sent.size());
  EXPECT_EQ(lentAfter, 0u);
  EXPECT_TRUE(got == sent) << "bytes differ, repeat or are out of order";
}

}  // namespace
}  // namespace sluice
