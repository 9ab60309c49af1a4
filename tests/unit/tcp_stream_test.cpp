// TcpStream reads and writes the socket at once and waits only when it is not ready:
// a gathered write larger than the socket takes (and of more buffers than one sendmsg
// takes) goes out partly at once and the rest after a wait, every byte once and in
// order; a read takes what is there, waits for what is not (or, without the wait, says
// it would block), and tells an end from a reset; a write to a reset peer fails without SIGPIPE; nothing works after
// abort().
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <csignal>
#include <functional>
#include <string>
#include <vector>

#include "byte_stream.h"
#include "loopback_pair.h"

namespace sluice {
namespace {

using boost::system::error_code;
using test::connectPair;

std::string pattern(size_t n, size_t seed) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>((i * 13 + seed) % 251);
  return out;
}

class TcpStreamTest : public ::testing::Test {
 protected:
  // SIGPIPE as the kernel has it: a write to a reset peer without MSG_NOSIGNAL ends the
  // test binary (the daemons ignore the signal; the writes must not need that).
  void SetUp() override { previous_ = std::signal(SIGPIPE, SIG_DFL); }
  void TearDown() override { std::signal(SIGPIPE, previous_); }

  void run(std::function<awaitable<void>()> test) {
    bool done = false;
    asio::co_spawn(io_, test(), [&](std::exception_ptr e) {
      done = true;
      if (e) ADD_FAILURE() << "test coroutine threw";
    });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!done && std::chrono::steady_clock::now() < deadline) io_.run_for(std::chrono::milliseconds(50));
    EXPECT_TRUE(done) << "timed out";
  }

  asio::io_context io_;
  void (*previous_)(int) = SIG_DFL;
};

// Until `socket` reports readable, hung up or in error (at most 2 s): the peer's end has
// arrived, so the next read takes it without a wait.
void awaitReady(tcp::socket& socket) {
  pollfd ready{socket.native_handle(), POLLIN | POLLRDHUP, 0};
  EXPECT_EQ(::poll(&ready, 1, 2000), 1);
}

awaitable<std::string> readToEnd(tcp::socket& socket, std::chrono::milliseconds startAfter) {
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer pause(executor, startAfter);
  co_await pause.async_wait(use_awaitable);
  std::string out;
  std::vector<char> buffer(65536);
  error_code ec;
  while (!ec) {
    size_t n = co_await socket.async_read_some(asio::buffer(buffer), asio::redirect_error(use_awaitable, ec));
    out.append(buffer.data(), n);
  }
  EXPECT_EQ(ec, asio::error::eof) << ec.message();
  co_return out;
}

awaitable<void> collect(tcp::socket& socket, std::chrono::milliseconds startAfter, std::string& out, Signal& done) {
  out = co_await readToEnd(socket, startAfter);
  done.set();
}

TEST_F(TcpStreamTest, GatheredWriteLargerThanTheSocketTakesArrivesWholeAndInOrder) {
  // Pieces that end inside, at and across a partial send's end, and far more than the
  // (shrunken) socket buffers hold while the reader is still asleep.
  std::vector<std::string> pieces = {pattern(1, 1), pattern(70000, 2), pattern(3, 3), pattern(500000, 4),
                                     pattern(65536 * 3 + 7, 5)};
  // More buffers than one sendmsg takes (64): the rest go in the next call.
  for (size_t i = 0; i < 200; ++i) pieces.push_back(pattern(17 + i % 5, 10 + i));
  const std::string single = pattern(1 << 20, 9);  // then one buffer, also past what the socket takes
  std::string expected, got;
  bool wroteAtOnce = true;
  auto test = [&]() -> awaitable<void> {
    auto executor = co_await asio::this_coro::executor;
    std::unique_ptr<TcpStream> writer;
    tcp::socket reader(executor);
    co_await connectPair(writer, reader);
    writer->socket().set_option(asio::socket_base::send_buffer_size(65536));
    reader.set_option(asio::socket_base::receive_buffer_size(65536));
    Signal readerDone(executor);
    asio::co_spawn(executor, collect(reader, std::chrono::milliseconds(50), got, readerDone), asio::detached);
    std::vector<asio::const_buffer> gather;
    for (const auto& piece : pieces) gather.emplace_back(piece.data(), piece.size());
    const auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(co_await writer->writeGathered(gather));
    // The reader slept 50 ms: a write that returned sooner did not wait for the socket.
    wroteAtOnce = std::chrono::steady_clock::now() - start < std::chrono::milliseconds(40);
    EXPECT_FALSE(co_await writer->writeAll(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(single.data()), single.size())));
    EXPECT_FALSE(co_await writer->shutdownSend());
    co_await readerDone.wait();
  };
  for (const auto& piece : pieces) expected += piece;
  expected += single;
  run(test);
  EXPECT_FALSE(wroteAtOnce) << "the socket took ~700 KB at once: the test did not reach the wait";
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected) << "bytes differ, repeat or are out of order";
}

TEST_F(TcpStreamTest, ReadTakesWhatIsThereWaitsForMoreThenTellsTheEndFromAReset) {
  auto test = [&]() -> awaitable<void> {
    auto executor = co_await asio::this_coro::executor;
    // Every round: an end or a reset, read without a wait or after one.
    for (int round = 0; round < 4; ++round) {
      const bool reset = round % 2 == 1;
      const bool withWait = round >= 2;
      std::unique_ptr<TcpStream> stream;
      tcp::socket peer(executor);
      co_await connectPair(stream, peer);
      std::vector<uint8_t> buffer(16);
      const std::string ready = "ready";
      co_await asio::async_write(peer, asio::buffer(ready), use_awaitable);
      IoResult first = co_await stream->readSome(buffer);  // there already
      EXPECT_FALSE(first.error) << first.error.message();
      EXPECT_EQ(std::string(buffer.begin(), buffer.begin() + static_cast<ptrdiff_t>(first.bytes)), "ready");
      // Nothing there: the read without a wait says so.
      IoResult none = stream->tryReadSome(buffer);
      EXPECT_EQ(none.error, error_code(asio::error::would_block)) << none.error.message();
      EXPECT_EQ(none.bytes, 0u);
      // Nothing there: the read waits for the peer's next bytes.
      asio::steady_timer later(executor, std::chrono::milliseconds(20));
      later.async_wait([&peer](const error_code&) {
        error_code ignored;
        const std::string more = "later";
        asio::write(peer, asio::buffer(more), ignored);
      });
      IoResult second = co_await stream->readSome(buffer);
      EXPECT_FALSE(second.error) << second.error.message();
      EXPECT_EQ(std::string(buffer.begin(), buffer.begin() + static_cast<ptrdiff_t>(second.bytes)), "later");
      error_code ec;
      if (reset) {
        peer.set_option(asio::socket_base::linger(true, 0), ec);
        peer.close(ec);
      } else {
        peer.shutdown(tcp::socket::shutdown_send, ec);
      }
      awaitReady(stream->socket());
      // The end or the reset, told alike with or without the wait.
      IoResult end = withWait ? co_await stream->readSome(buffer) : stream->tryReadSome(buffer);
      EXPECT_EQ(end.bytes, 0u);
      EXPECT_EQ(end.error, reset ? error_code(asio::error::connection_reset) : error_code(asio::error::eof))
          << (reset ? "reset" : "end") << (withWait ? " after a wait" : " without a wait") << ": "
          << end.error.message();
      if (reset) {
        // Writing to the reset peer: an error, not SIGPIPE.
        const std::string late = "late";
        EXPECT_TRUE(co_await stream->writeAll(
            std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(late.data()), late.size())));
      }
      // After abort(): errors, no touch of a closed (or reused) descriptor.
      stream->abort();
      EXPECT_TRUE((co_await stream->readSome(buffer)).error);
      const std::vector<asio::const_buffer> gather{asio::const_buffer("x", 1)};
      EXPECT_TRUE(co_await stream->writeGathered(gather));
    }
  };
  run(test);
}

}  // namespace
}  // namespace sluice
