// The HTTP/2 CONNECT tunnel over real mTLS on loopback: stream semantics (half-close,
// reset both ways, refusal), flow control (a slow reader stalls only its own stream) and
// the PING timeout; below it, the TLS stream's reads (inbox, then the socket) and the
// relay's reads from a plain socket (every size, the end, a reset).
#include "h2_tunnel.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <functional>

#include "test_certificates.h"
#include "tls_context.h"

namespace sluice {
namespace {

using boost::system::error_code;
using test_pki::CertSpec;
using test_pki::TestMeshCa;

CertSpec identity(const std::string& uri) {
  CertSpec spec;
  spec.sans = "URI:" + uri;
  return spec;
}

// Reads until end of stream or an error; the bytes, and the error if not EOF.
awaitable<std::pair<std::string, error_code>> readAll(TunnelStream& stream, size_t pauseAfter = 0,
                                                      asio::steady_timer* pause = nullptr) {
  std::string out;
  std::vector<uint8_t> buffer(65536);
  while (true) {
    IoResult r = co_await stream.readSome(buffer);
    if (r.error == asio::error::eof) co_return std::make_pair(out, error_code{});
    if (r.error) co_return std::make_pair(out, r.error);
    out.append(reinterpret_cast<char*>(buffer.data()), r.bytes);
    if (pause && out.size() >= pauseAfter) {
      error_code ignored;
      co_await pause->async_wait(asio::redirect_error(use_awaitable, ignored));
      pause = nullptr;
    }
  }
}

awaitable<error_code> writeString(TunnelStream& stream, std::string text, bool finish) {
  auto ec =
      co_await stream.writeAll(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  if (!ec && finish) ec = co_await stream.shutdownSend();
  co_return ec;
}

class H2TunnelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::signal(SIGPIPE, SIG_IGN);  // as the daemons do
    dir_ = std::filesystem::temp_directory_path() / ("sluice-h2-test-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    ca_ = std::make_unique<TestMeshCa>(dir_);
    ca_->issue("agent", identity("spiffe://test/sa/agent"));
    ca_->issue("gateway", identity("spiffe://test/sa/gateway"));
    clientCtx_ = makeMeshTlsContext({ca_->caFile(), dir_ / "agent.pem", dir_ / "agent.key"}, TlsRole::Client);
    serverCtx_ = makeMeshTlsContext({ca_->caFile(), dir_ / "gateway.pem", dir_ / "gateway.key"}, TlsRole::Server);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A connected TLS pair over loopback TCP, both handshakes done.
  awaitable<void> tlsPair(std::unique_ptr<TlsStream>& client, std::unique_ptr<TlsStream>& server) {
    auto executor = co_await asio::this_coro::executor;
    tcp::acceptor acceptor(executor, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    tcp::socket a(executor);
    co_await a.async_connect(acceptor.local_endpoint(), use_awaitable);
    tcp::socket b = co_await acceptor.async_accept(use_awaitable);
    client = std::make_unique<TlsStream>(std::move(a), clientCtx_.get(), TlsRole::Client);
    server = std::make_unique<TlsStream>(std::move(b), serverCtx_.get(), TlsRole::Server);
    Signal serverDone(executor);
    error_code serverError;
    asio::co_spawn(executor, handshakeInto(*server, serverError, serverDone), asio::detached);
    error_code clientError = co_await client->handshake();
    co_await serverDone.wait();
    EXPECT_FALSE(clientError) << client->lastError();
    EXPECT_FALSE(serverError) << server->lastError();
  }
  static awaitable<void> handshakeInto(TlsStream& stream, error_code& error, Signal& done) {
    error = co_await stream.handshake();
    done.set();
  }

  // Client and server h2 connections, both running; the server hands requests to `onRequest`.
  awaitable<void> connect(H2Settings settings, std::function<void(std::shared_ptr<TunnelStream>)> onRequest) {
    std::unique_ptr<TlsStream> c, s;
    co_await tlsPair(c, s);
    client_ = std::make_shared<H2Connection>(std::move(c), H2Role::Client, settings);
    server_ = std::make_shared<H2Connection>(std::move(s), H2Role::Server, settings);
    server_->onRequest = std::move(onRequest);
    asio::co_spawn(io_, client_->run(), asio::detached);
    asio::co_spawn(io_, server_->run(), asio::detached);
  }

  // A client connection (PINGs 100 ms apart, 200 ms to answer) whose other end, `peer`,
  // is bare TLS: the test speaks HTTP/2 there by hand, or says nothing at all.
  awaitable<void> clientOverRawPeer(std::unique_ptr<TlsStream>& peer) {
    H2Settings settings;
    settings.pingInterval = std::chrono::milliseconds(100);
    settings.pingTimeout = std::chrono::milliseconds(200);
    std::unique_ptr<TlsStream> c;
    co_await tlsPair(c, peer);
    client_ = std::make_shared<H2Connection>(std::move(c), H2Role::Client, settings);
    asio::co_spawn(io_, client_->run(), asio::detached);
  }

  // Runs `test` to completion (or fails after `limit`), then closes both ends.
  void run(std::function<awaitable<void>()> test, std::chrono::seconds limit = std::chrono::seconds(20)) {
    bool done = false;
    asio::co_spawn(io_, test(), [&](std::exception_ptr e) {
      done = true;
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          ADD_FAILURE() << "test coroutine threw: " << ex.what();
        }
      }
    });
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < deadline) io_.run_for(std::chrono::milliseconds(50));
    EXPECT_TRUE(done) << "timed out";
    if (client_) client_->close("test-end");
    if (server_) server_->close("test-end");
    io_.run_for(std::chrono::milliseconds(100));
    if (server_) server_->onRequest = nullptr;
  }

  std::filesystem::path dir_;
  std::unique_ptr<TestMeshCa> ca_;
  SslCtxPtr clientCtx_, serverCtx_;
  asio::io_context io_;
  std::shared_ptr<H2Connection> client_, server_;
};

// Gateway side of the half-close test: read to END_STREAM, then answer and end.
awaitable<void> echoAfterEof(std::shared_ptr<TunnelStream> stream, std::string& got, bool& ended) {
  EXPECT_EQ(stream->method(), "CONNECT");
  EXPECT_EQ(stream->authority(), "www.example.com:443");
  EXPECT_EQ(stream->connectionId(), "0123456789abcdef");
  stream->respond(200, "");
  auto [bytes, error] = co_await readAll(*stream);
  EXPECT_FALSE(error) << error.message();
  got = bytes;
  // The agent's side is half-closed; ours still sends.
  EXPECT_FALSE(co_await writeString(*stream, "reply:" + bytes, true));
  ended = stream->ended();
}

TEST_F(H2TunnelTest, HalfCloseBothWaysDeliversEveryByteBeforeTheEnd) {
  std::string gatewayGot;
  bool gatewayEnded = false;
  auto test = [&]() -> awaitable<void> {
    co_await connect({}, [&](std::shared_ptr<TunnelStream> s) {
      asio::co_spawn(io_, echoAfterEof(s, gatewayGot, gatewayEnded), asio::detached);
    });
    auto stream = client_->openConnect("www.example.com:443", "0123456789abcdef");
    EXPECT_TRUE(stream);
    std::string hello(100000, 'h');
    EXPECT_FALSE(co_await writeString(*stream, hello, true));  // DATA then END_STREAM, before any answer
    co_await stream->waitResponse();
    EXPECT_EQ(stream->status(), 200);
    auto [bytes, error] = co_await readAll(*stream);
    EXPECT_FALSE(error) << error.message();
    EXPECT_EQ(bytes, "reply:" + hello);
    EXPECT_TRUE(stream->ended());
    EXPECT_FALSE(stream->isReset());
    for (int i = 0; i < 100 && client_->streamCount() > 0; ++i) {
      asio::steady_timer t(io_, std::chrono::milliseconds(10));
      co_await t.async_wait(use_awaitable);
    }
    EXPECT_EQ(client_->streamCount(), 0u) << "a stream ended both ways is closed";
  };
  run(test);
  EXPECT_EQ(gatewayGot.size(), 100000u);
  EXPECT_TRUE(gatewayEnded);
}

TEST_F(H2TunnelTest, DrainedConnectionDeliversItsLastStreamThenEnds) {
  std::string gatewayGot;
  bool gatewayEnded = false;
  auto test = [&]() -> awaitable<void> {
    co_await connect({}, [&](std::shared_ptr<TunnelStream> s) {
      asio::co_spawn(io_, echoAfterEof(s, gatewayGot, gatewayEnded), asio::detached);
    });
    auto stream = client_->openConnect("www.example.com:443", "0123456789abcdef");
    client_->drain();  // as after a certificate rotation: no new streams, end after this one
    EXPECT_FALSE(client_->openConnect("www.example.com:443", "0123456789abcdef"));
    std::string hello(200000, 'h');
    EXPECT_FALSE(co_await writeString(*stream, hello, true));
    auto [bytes, error] = co_await readAll(*stream);
    EXPECT_FALSE(error) << error.message();
    EXPECT_EQ(bytes, "reply:" + hello) << "every byte of the last stream arrives";
    for (int i = 0; i < 300 && (client_->isOpen() || server_->isOpen()); ++i) {
      asio::steady_timer t(io_, std::chrono::milliseconds(10));
      co_await t.async_wait(use_awaitable);
    }
    EXPECT_FALSE(client_->isOpen());
    EXPECT_FALSE(server_->isOpen());
    EXPECT_EQ(client_->closeReason(), "drained");
    // The gateway ends by its own GOAWAY or by the agent's close_notify, whichever is first;
    // never by an error.
    EXPECT_TRUE(server_->closeReason() == "drained" || server_->closeReason() == "peer-closed")
        << server_->closeReason();
  };
  run(test);
  EXPECT_EQ(gatewayGot.size(), 200000u);
  EXPECT_TRUE(gatewayEnded);
}

// The gateway's drain: GOAWAY at once. The stream it already took finishes with every
// byte; one the agent sent across the GOAWAY is refused (REFUSED_STREAM: the agent retries
// it elsewhere); no new stream opens; both ends then close cleanly.
TEST_F(H2TunnelTest, GatewayGoAwayRefusesLaterStreamsAndFinishesTheOpenOne) {
  std::string gatewayGot;
  bool gatewayEnded = false;
  int requests = 0;
  auto test = [&]() -> awaitable<void> {
    co_await connect({}, [&](std::shared_ptr<TunnelStream> s) {
      ++requests;
      asio::co_spawn(io_, echoAfterEof(s, gatewayGot, gatewayEnded), asio::detached);
    });
    auto stream = client_->openConnect("www.example.com:443", "0123456789abcdef");
    co_await stream->waitResponse();  // the gateway has taken it
    EXPECT_EQ(stream->status(), 200);
    server_->goAway();
    auto crossing = client_->openConnect("www.example.com:443", "0123456789abcdee");  // sent before the GOAWAY arrives
    EXPECT_TRUE(crossing);
    for (int i = 0; i < 100 && !client_->goingAway(); ++i) {
      asio::steady_timer t(io_, std::chrono::milliseconds(10));
      co_await t.async_wait(use_awaitable);
    }
    EXPECT_TRUE(client_->goingAway());
    EXPECT_FALSE(client_->openConnect("www.example.com:443", "0123456789abcdef")) << "no new stream after GOAWAY";
    if (crossing) {
      co_await crossing->waitResponse();
      EXPECT_TRUE(crossing->isReset());
      EXPECT_EQ(crossing->resetReason(), "refused-stream");
      EXPECT_EQ(crossing->status(), 0);
    }
    std::string hello(100000, 'h');
    EXPECT_FALSE(co_await writeString(*stream, hello, true));
    auto [bytes, error] = co_await readAll(*stream);
    EXPECT_FALSE(error) << error.message();
    EXPECT_EQ(bytes, "reply:" + hello) << "every byte of the stream taken before the GOAWAY arrives";
    for (int i = 0; i < 300 && (client_->isOpen() || server_->isOpen()); ++i) {
      asio::steady_timer t(io_, std::chrono::milliseconds(10));
      co_await t.async_wait(use_awaitable);
    }
    EXPECT_FALSE(client_->isOpen());
    EXPECT_FALSE(server_->isOpen());
    for (const auto& reason : {client_->closeReason(), server_->closeReason()}) {
      EXPECT_TRUE(reason == "drained" || reason == "goaway" || reason == "peer-closed") << reason;
    }
  };
  run(test);
  EXPECT_EQ(requests, 1) << "the crossing stream never reached the gateway's handler";
  EXPECT_EQ(gatewayGot.size(), 100000u);
  EXPECT_TRUE(gatewayEnded);
}

awaitable<void> resetAfterSome(std::shared_ptr<TunnelStream> stream) {
  stream->respond(200, "");
  co_await writeString(*stream, "partial", false);
  asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(50));
  co_await t.async_wait(use_awaitable);
  stream->abort();  // the origin reset: RST_STREAM
}

TEST_F(H2TunnelTest, GatewayResetReachesTheAgentAsReset) {
  auto test = [&]() -> awaitable<void> {
    co_await connect({},
                     [&](std::shared_ptr<TunnelStream> s) { asio::co_spawn(io_, resetAfterSome(s), asio::detached); });
    auto stream = client_->openConnect("www.example.com:443", "0123456789abcdef");
    co_await writeString(*stream, "hello", false);
    auto [bytes, error] = co_await readAll(*stream);
    EXPECT_EQ(error, asio::error::connection_reset);
    EXPECT_TRUE(stream->isReset());
    EXPECT_FALSE(stream->tunnelLost()) << "only the stream, not the tunnel";
    EXPECT_TRUE(client_->isOpen());
  };
  run(test);
}

awaitable<void> readUntilError(std::shared_ptr<TunnelStream> stream, error_code& error, bool& done) {
  stream->respond(200, "");
  auto result = co_await readAll(*stream);
  error = result.second;
  done = true;
}

TEST_F(H2TunnelTest, AgentResetReachesTheGatewayAsReset) {
  error_code gatewayError;
  bool gatewayDone = false;
  auto test = [&]() -> awaitable<void> {
    co_await connect({}, [&](std::shared_ptr<TunnelStream> s) {
      asio::co_spawn(io_, readUntilError(s, gatewayError, gatewayDone), asio::detached);
    });
    auto stream = client_->openConnect("www.example.com:443", "0123456789abcdef");
    co_await writeString(*stream, "hello", false);
    co_await stream->waitResponse();
    stream->abort();  // the app reset
    for (int i = 0; i < 200 && !gatewayDone; ++i) {
      asio::steady_timer t(io_, std::chrono::milliseconds(10));
      co_await t.async_wait(use_awaitable);
    }
  };
  run(test);
  EXPECT_TRUE(gatewayDone);
  EXPECT_EQ(gatewayError, asio::error::connection_reset);
}

TEST_F(H2TunnelTest, RefusalCarriesStatusAndReasonAndIsNotAnEndOfStream) {
  auto test = [&]() -> awaitable<void> {
    co_await connect({}, [&](std::shared_ptr<TunnelStream> s) { s->respond(403, "host-not-allowed"); });
    auto stream = client_->openConnect("blocked.example.net:443", "0123456789abcdef");
    co_await writeString(*stream, "hello", false);
    co_await stream->waitResponse();
    EXPECT_EQ(stream->status(), 403);
    EXPECT_EQ(stream->result(), "host-not-allowed");
    std::vector<uint8_t> buffer(16);
    IoResult r = co_await stream->readSome(buffer);
    EXPECT_EQ(r.error, asio::error::connection_refused) << "a refusal must not look like the origin's FIN";
    stream->abort();
    EXPECT_TRUE(client_->isOpen()) << "a refused stream leaves the tunnel up";
  };
  run(test);
}

// Gateway side of the window test: send `bytes` and end; report how far the writer got.
awaitable<void> sendMany(std::shared_ptr<TunnelStream> stream, size_t bytes, size_t& written) {
  stream->respond(200, "");
  std::vector<uint8_t> chunk(65536, 'x');
  while (written < bytes) {
    if (co_await stream->writeAll(chunk)) co_return;
    written += chunk.size();
  }
  co_await stream->shutdownSend();
}

TEST_F(H2TunnelTest, SlowReaderStallsOnlyItsOwnStream) {
  H2Settings settings;
  settings.streamWindow = 256 * 1024;
  settings.connectionWindow = 4u << 20;
  constexpr size_t kTotal = 16u << 20;  // 4x the connection window: needs window updates
  size_t slowWritten = 0, fastWritten = 0;
  auto test = [&]() -> awaitable<void> {
    co_await connect(settings, [&](std::shared_ptr<TunnelStream> s) {
      size_t& counter = s->authority() == "slow.example:443" ? slowWritten : fastWritten;
      asio::co_spawn(io_, sendMany(s, kTotal, counter), asio::detached);
    });
    auto slow = client_->openConnect("slow.example:443", "0123456789abcdef");
    auto fast = client_->openConnect("fast.example:443", "fedcba9876543210");
    // The slow stream's reader takes nothing; the fast one reads all 16 MiB.
    auto [bytes, error] = co_await readAll(*fast);
    EXPECT_FALSE(error) << error.message();
    EXPECT_EQ(bytes.size(), kTotal);
    // The slow stream's sender is held by its stream window, not the connection's.
    EXPECT_LE(slowWritten, settings.streamWindow + 65536u);
    EXPECT_LT(slowWritten, kTotal);
    // And it flows once its reader reads.
    auto [slowBytes, slowError] = co_await readAll(*slow);
    EXPECT_FALSE(slowError) << slowError.message();
    EXPECT_EQ(slowBytes.size(), kTotal);
  };
  run(test, std::chrono::seconds(60));
  EXPECT_EQ(fastWritten, kTotal);
  EXPECT_EQ(slowWritten, kTotal);
}

// The gateway side of the relay test: the stream relayed to a loopback TCP "origin".
awaitable<void> relayToOrigin(std::shared_ptr<TunnelStream> stream, tcp::socket upstream, RelayResult& result,
                              bool& done) {
  stream->respond(200, "");
  TcpStream origin(std::move(upstream));
  result = co_await relayBoth(*stream, origin, std::chrono::milliseconds(20000));
  done = true;
}

// The origin: reads to end of stream, answers `reply` and closes.
awaitable<void> originReadAll(tcp::socket& socket, std::string& got, std::string reply) {
  std::vector<char> buffer(100000);
  error_code ec;
  while (!ec) {
    size_t n = co_await socket.async_read_some(asio::buffer(buffer), asio::redirect_error(use_awaitable, ec));
    got.append(buffer.data(), n);
  }
  EXPECT_EQ(ec, asio::error::eof) << ec.message();
  co_await asio::async_write(socket, asio::buffer(reply), asio::redirect_error(use_awaitable, ec));
  EXPECT_FALSE(ec) << ec.message();
  socket.shutdown(tcp::socket::shutdown_send, ec);
}

// Received DATA reaches a socket straight from the stream's chunks (pumpChunks): every
// byte in order across many chunks and window updates (4x the stream window), then
// END_STREAM as the origin's EOF, and the origin's answer back.
TEST_F(H2TunnelTest, RelayWritesReceivedChunksToTheSocketInOrder) {
  H2Settings settings;
  settings.streamWindow = 256 * 1024;
  constexpr size_t kTotal = 1u << 20;
  std::string payload(kTotal, '\0');
  for (size_t i = 0; i < kTotal; ++i) payload[i] = static_cast<char>(i % 251);
  std::string originGot;
  RelayResult relayed;
  bool relayDone = false;
  auto test = [&]() -> awaitable<void> {
    auto executor = co_await asio::this_coro::executor;
    tcp::acceptor acceptor(executor, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    tcp::socket gatewaySide(executor);
    co_await gatewaySide.async_connect(acceptor.local_endpoint(), use_awaitable);
    tcp::socket originSide = co_await acceptor.async_accept(use_awaitable);
    co_await connect(settings, [&](std::shared_ptr<TunnelStream> s) {
      asio::co_spawn(io_, relayToOrigin(s, std::move(gatewaySide), relayed, relayDone), asio::detached);
    });
    EXPECT_STREQ(SSL_get_cipher_name(client_->tls().ssl()), "TLS_AES_128_GCM_SHA256");
    Signal originDone(executor);
    asio::co_spawn(executor, signalAfter(originReadAll(originSide, originGot, "answer"), originDone), asio::detached);
    auto stream = client_->openConnect("www.example.com:443", "0123456789abcdef");
    EXPECT_FALSE(co_await writeString(*stream, payload, true));
    co_await stream->waitResponse();
    EXPECT_EQ(stream->status(), 200);
    auto [bytes, error] = co_await readAll(*stream);
    EXPECT_FALSE(error) << error.message();
    EXPECT_EQ(bytes, "answer");
    co_await originDone.wait();
    for (int i = 0; i < 100 && !relayDone; ++i) {
      asio::steady_timer t(io_, std::chrono::milliseconds(10));
      co_await t.async_wait(use_awaitable);
    }
  };
  run(test, std::chrono::seconds(30));
  EXPECT_EQ(originGot.size(), kTotal);
  EXPECT_TRUE(originGot == payload) << "bytes differ or are out of order";
  EXPECT_TRUE(relayDone);
  EXPECT_TRUE(relayed.clean()) << relayed.outcome();
  EXPECT_EQ(relayed.bytesAtoB, kTotal);
  EXPECT_EQ(relayed.bytesBtoA, 6u);
}

TEST_F(H2TunnelTest, PingTimeoutResetsEveryStreamOnTheTunnel) {
  std::unique_ptr<TlsStream> silentPeer;
  auto test = [&]() -> awaitable<void> {
    co_await clientOverRawPeer(silentPeer);  // the peer finished TLS and then says nothing
    auto stream = client_->openConnect("www.example.com:443", "0123456789abcdef");
    co_await writeString(*stream, "hello", false);
    auto [bytes, error] = co_await readAll(*stream);
    EXPECT_EQ(error, asio::error::connection_reset);
    EXPECT_TRUE(stream->tunnelLost());
    EXPECT_EQ(stream->resetReason(), "tunnel-lost:ping-timeout");
    EXPECT_FALSE(client_->isOpen());
    EXPECT_EQ(client_->closeReason(), "ping-timeout");
    EXPECT_FALSE(client_->openConnect("www.example.com:443", "0123456789abcdef")) << "no new stream on a dead tunnel";
  };
  run(test);
}

// A PING ACK counts only when it carries our outstanding PING's data: a peer that sends
// ACKs of its own, and never answers ours, is still found dead.
TEST_F(H2TunnelTest, PingAckWithOtherDataDoesNotKeepTheTunnelAlive) {
  std::unique_ptr<TlsStream> peer;
  auto test = [&]() -> awaitable<void> {
    auto executor = co_await asio::this_coro::executor;
    co_await clientOverRawPeer(peer);
    // The peer's preface (empty SETTINGS), then every 20 ms an unasked PING ACK whose data
    // is that of the client's first PING (count 1) or garbage; it reads nothing.
    const std::vector<uint8_t> preface = {0, 0, 0, 4, 0, 0, 0, 0, 0};
    EXPECT_FALSE(co_await peer->writeAll(preface));
    for (int i = 0; i < 100 && client_->isOpen(); ++i) {
      std::vector<uint8_t> ack = {0, 0, 8, 6, 1, 0, 0, 0, 0};
      const std::vector<uint8_t> data = i % 2 ? std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 0, 1}
                                              : std::vector<uint8_t>{'n', 'o', 't', ' ', 'o', 'u', 'r', 's'};
      ack.insert(ack.end(), data.begin(), data.end());
      if (co_await peer->writeAll(ack)) break;
      asio::steady_timer t(executor, std::chrono::milliseconds(20));
      co_await t.async_wait(use_awaitable);
    }
    EXPECT_FALSE(client_->isOpen()) << "2 s of foreign ACKs kept a tunnel alive whose peer never answered";
    EXPECT_EQ(client_->closeReason(), "ping-timeout");
    // At most the first PING, whose data the peer sent (unasked, but the same bytes).
    EXPECT_LE(client_->pingsAnswered(), 1u);
  };
  run(test);
}

// What a raw peer saw of one bulk stream: the plaintext size of every record (one
// SSL_read returns one record at most) and of every DATA frame's payload.
struct BulkStreamSeen {
  std::vector<size_t> records, dataFrames;
  size_t dataBytes = 0;
  int pings = 0;
};

// The peer grants windows as large as HTTP/2 allows, waits for the client's SETTINGS ACK,
// lets `send` start one stream, and reads its frames to END_STREAM, sending a PING after
// every `pingEvery` records (0: none).
awaitable<void> readBulkStream(TlsStream& peer, std::function<void()> send, size_t pingEvery, BulkStreamSeen& seen) {
  std::vector<uint8_t> buffer(65536), pending;
  size_t at = 24;        // past the client's connection preface
  size_t pingAfter = 0;  // no PINGs before the stream
  auto readFramesUntil = [&](auto done) -> awaitable<bool> {
    while (true) {
      IoResult r = co_await peer.readSome(buffer);
      if (r.error) {
        ADD_FAILURE() << "peer read: " << r.error.message();
        co_return false;
      }
      seen.records.push_back(r.bytes);
      pending.insert(pending.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(r.bytes));
      bool found = false;
      while (pending.size() >= at + 9) {
        const size_t length = (size_t{pending[at]} << 16) | (size_t{pending[at + 1]} << 8) | pending[at + 2];
        if (pending.size() < at + 9 + length) break;
        const uint8_t type = pending[at + 3], flags = pending[at + 4];
        if (type == 0) {
          seen.dataBytes += length;
          seen.dataFrames.push_back(length);
        }
        found = found || done(type, flags);
        at += 9 + length;
      }
      if (found) co_return true;
      if (pingAfter && seen.records.size() % pingAfter == 0) {
        const std::vector<uint8_t> ping = {
            0, 0, 8, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, static_cast<uint8_t>(++seen.pings)};
        EXPECT_FALSE(co_await peer.writeAll(ping));
      }
    }
  };
  // SETTINGS (stream window 2^31-1) and a connection window as large: the stream goes
  // without another frame from the peer.
  const std::vector<uint8_t> settings = {0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 4, 0x7f, 0xff, 0xff, 0xff};
  const std::vector<uint8_t> window = {0, 0, 4, 8, 0, 0, 0, 0, 0, 0x7f, 0xff, 0, 0};
  EXPECT_FALSE(co_await peer.writeAll(settings));
  EXPECT_FALSE(co_await peer.writeAll(window));
  if (!co_await readFramesUntil([](uint8_t type, uint8_t flags) { return type == 4 && (flags & 1); })) co_return;
  seen = BulkStreamSeen{};
  pingAfter = pingEvery;
  send();
  co_await readFramesUntil([](uint8_t type, uint8_t flags) { return type == 0 && (flags & 1); });  // END_STREAM
}

// `count` chunks of `bytes` each through writeChunk (room for a header in front), then the end.
awaitable<void> writeChunks(std::shared_ptr<TunnelStream> stream, size_t count, size_t bytes) {
  for (size_t i = 0; i < count; ++i) {
    auto chunk =
        std::make_shared<ReceivedChunk>(BufferPool::local().take(), kH2FrameHeaderBytes, kH2FrameHeaderBytes + bytes);
    std::memset(chunk->buffer.span().data() + chunk->begin, 'x', bytes);
    EXPECT_FALSE(co_await stream->writeChunk(std::move(chunk)));
  }
  EXPECT_FALSE(co_await stream->shutdownSend());
}

std::string sizesOf(const std::vector<size_t>& sizes) {
  std::string out;
  for (size_t size : sizes) out += std::to_string(size) + " ";
  return out;
}

// A bulk stream leaves in full TLS records: one DATA frame (header and payload) is one
// 16 KiB record, and a batch of frames makes no short record at its end (each one would
// cost a seal on this side and an open on the other).
TEST_F(H2TunnelTest, BulkStreamTravelsInFullTlsRecords) {
  std::unique_ptr<TlsStream> peer;
  const size_t sent = 1u << 20;
  BulkStreamSeen seen;
  auto test = [&]() -> awaitable<void> {
    co_await clientOverRawPeer(peer);
    auto send = [&] {
      auto stream = client_->openConnect("www.example.com:443", "0123456789abcdef");
      asio::co_spawn(io_, writeString(*stream, std::string(sent, 'x'), true),
                     [stream](std::exception_ptr, error_code ec) { EXPECT_FALSE(ec) << ec.message(); });
    };
    co_await readBulkStream(*peer, send, 0, seen);
  };
  run(test);
  EXPECT_EQ(seen.dataBytes, sent);
  // Every record full but the HEADERS (the writer may take them before the bytes come),
  // the stream's last bytes and its END_STREAM (an empty DATA frame: the end came after
  // the bytes were queued). A short record per batch would be 16 more.
  const auto shortRecords = std::count_if(seen.records.begin(), seen.records.end(),
                                          [](size_t bytes) { return bytes != kTlsRecordPlaintext; });
  EXPECT_LE(shortRecords, 3) << sizesOf(seen.records);
  EXPECT_GE(seen.records.size(), sent / kTlsRecordPlaintext) << sizesOf(seen.records);
}

// The relay's chunks (writeChunk, sealed in place) go in full frames and full records
// too, with the peer's PINGs in between: each answer is a small record of its own, and
// no DATA frame is cut short for it.
TEST_F(H2TunnelTest, ChunkedStreamKeepsFullFramesAcrossPingAnswers) {
  std::unique_ptr<TlsStream> peer;
  const size_t chunks = 16;
  BulkStreamSeen seen;
  auto test = [&]() -> awaitable<void> {
    co_await clientOverRawPeer(peer);
    auto send = [&] {
      auto stream = client_->openConnect("www.example.com:443", "0123456789abcdef");
      asio::co_spawn(io_, writeChunks(stream, chunks, TunnelStream::kWriteChunkBytes), asio::detached);
    };
    co_await readBulkStream(*peer, send, 5, seen);
  };
  run(test);
  EXPECT_EQ(seen.dataBytes, chunks * TunnelStream::kWriteChunkBytes);
  const auto shortFrames = std::count_if(seen.dataFrames.begin(), seen.dataFrames.end(),
                                         [](size_t bytes) { return bytes != kDataFramePayload && bytes != 0; });
  EXPECT_EQ(shortFrames, 0) << sizesOf(seen.dataFrames);
  const auto shortRecords = std::count_if(seen.records.begin(), seen.records.end(),
                                          [](size_t bytes) { return bytes != kTlsRecordPlaintext; });
  EXPECT_GT(seen.pings, 0);
  // The answers, the HEADERS and END_STREAM.
  EXPECT_LE(shortRecords, seen.pings + 2) << sizesOf(seen.records);
}

// The next PING goes an interval after the last one's answer, not after its whole
// timeout window: a gateway that goes silent is noticed within interval + timeout.
TEST_F(H2TunnelTest, NextPingFollowsTheAnswerNotTheTimeoutWindow) {
  H2Settings settings;
  settings.pingInterval = std::chrono::milliseconds(50);
  settings.pingTimeout = std::chrono::seconds(5);
  auto test = [&]() -> awaitable<void> {
    co_await connect(settings, [](std::shared_ptr<TunnelStream>) {});
    asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::seconds(1));
    co_await t.async_wait(use_awaitable);
    // Paced by the timeout window, one PING would have been answered in this second.
    EXPECT_GE(client_->pingsAnswered(), 5u);
    EXPECT_GE(server_->pingsAnswered(), 5u);
    EXPECT_TRUE(client_->isOpen());
  };
  run(test);
}

awaitable<void> drainStream(std::shared_ptr<TunnelStream> stream) {
  co_await readAll(*stream);
}

awaitable<void> pause(std::chrono::milliseconds duration) {
  asio::steady_timer t(co_await asio::this_coro::executor, duration);
  co_await t.async_wait(use_awaitable);
}

// What the origin does once the gateway has its 200 out: speak, stay silent, or reset.
enum class Origin { Speaks, Silent, Resets };

// Gateway side of the held-200 tests, in the gateway's order: a dial's time after the
// request (whose read wakes the writer), connected; the relay takes the ClientHello and
// waits for more (giving its window back); then the origin, `after` later.
awaitable<void> answerLater(std::shared_ptr<TunnelStream> stream, std::chrono::milliseconds after, Origin origin) {
  co_await pause(std::chrono::milliseconds(20));
  stream->respond(200, "");
  asio::co_spawn(co_await asio::this_coro::executor, drainStream(stream), asio::detached);
  co_await pause(after);
  if (origin == Origin::Speaks) co_await writeString(*stream, "first", false);
  if (origin == Origin::Resets) stream->abort();
}

awaitable<void> refuseLater(std::shared_ptr<TunnelStream> stream) {
  co_await pause(std::chrono::milliseconds(20));
  stream->respond(403, "host-not-allowed");
}

// The held-200 tests look at a quiet tunnel: any frame the gateway reads sends a held 200
// at once (allowed, but not what they check), so the SETTINGS and their ACKs go first.
constexpr std::chrono::milliseconds kSettle{200};

// A 200 waits for the origin's first bytes and leaves with them: one record, one wake-up
// of the agent. A refusal is not held.
TEST_F(H2TunnelTest, HeldResponseLeavesWithTheOriginsFirstBytes) {
  H2Settings settings;
  settings.responseHold = std::chrono::seconds(10);  // far beyond the test: only company sends it
  auto test = [&]() -> awaitable<void> {
    co_await connect(settings, [&](std::shared_ptr<TunnelStream> s) {
      if (s->authority() == "blocked.example.net:443") {
        asio::co_spawn(io_, refuseLater(s), asio::detached);
      } else {
        asio::co_spawn(io_, answerLater(s, std::chrono::milliseconds(100), Origin::Speaks), asio::detached);
      }
    });
    co_await pause(kSettle);
    auto stream = client_->openConnect("www.example.com:443", "0123456789abcdef");
    co_await writeString(*stream, "hello", false);
    co_await stream->waitResponse();
    EXPECT_EQ(stream->status(), 200);
    EXPECT_EQ(stream->bytesReceived(), 5u) << "the 200 came without the first bytes";
    auto refused = client_->openConnect("blocked.example.net:443", "0123456789abcdef");
    co_await writeString(*refused, "hello", false);
    co_await refused->waitResponse();
    EXPECT_EQ(refused->status(), 403);
    stream->abort();
    refused->abort();
  };
  run(test, std::chrono::seconds(5));  // a held 403, or a 200 held to its end, runs out of time
}

// An origin that says nothing first still gets its 200 to the agent, after the hold.
TEST_F(H2TunnelTest, HeldResponseGoesAloneWhenTheOriginIsSilent) {
  H2Settings settings;
  settings.responseHold = std::chrono::milliseconds(300);
  auto test = [&]() -> awaitable<void> {
    co_await connect(settings, [&](std::shared_ptr<TunnelStream> s) {
      asio::co_spawn(io_, answerLater(s, std::chrono::seconds(0), Origin::Silent), asio::detached);
    });
    co_await pause(kSettle);
    auto stream = client_->openConnect("www.example.com:443", "0123456789abcdef");
    co_await writeString(*stream, "hello", false);
    co_await stream->waitResponse();
    EXPECT_EQ(stream->status(), 200);
    EXPECT_EQ(stream->bytesReceived(), 0u);
    stream->abort();
  };
  run(test, std::chrono::seconds(5));
}

// An origin that resets while its 200 is held: the agent gets the 200, then the reset
// (the origin's answer, passed to the app), never a reset alone (which it would take for
// the gateway's trouble and retry elsewhere).
TEST_F(H2TunnelTest, OriginResetDuringTheHoldFollowsThe200) {
  H2Settings settings;
  settings.responseHold = std::chrono::seconds(10);
  auto test = [&]() -> awaitable<void> {
    co_await connect(settings, [&](std::shared_ptr<TunnelStream> s) {
      asio::co_spawn(io_, answerLater(s, std::chrono::milliseconds(5), Origin::Resets), asio::detached);
    });
    co_await pause(kSettle);
    auto stream = client_->openConnect("www.example.com:443", "0123456789abcdef");
    co_await writeString(*stream, "hello", false);
    co_await stream->waitResponse();
    EXPECT_EQ(stream->status(), 200) << "the reset came without the 200";
    auto [bytes, error] = co_await readAll(*stream);
    EXPECT_EQ(error, asio::error::connection_reset);
    EXPECT_TRUE(stream->isReset());
    EXPECT_FALSE(stream->tunnelLost());
    EXPECT_TRUE(client_->isOpen());
  };
  run(test, std::chrono::seconds(5));
}

// Bytes 0..n of a pattern that shows any reordering, loss or duplication.
std::string pattern(size_t n, size_t seed) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>((i * 7 + seed) % 253);
  return out;
}

// writeChunk seals large frames where their payload is, each header written over the
// bytes before it: chunks of every size (with room for a header, and one without, whose
// frames are copied) arrive whole and in order, the stream's end after them.
awaitable<void> readAllInto(std::shared_ptr<TunnelStream> stream, std::string& got, bool& done) {
  stream->respond(200, "");
  error_code error;
  std::tie(got, error) = co_await readAll(*stream);
  EXPECT_FALSE(error) << error.message();
  done = true;
}

TEST_F(H2TunnelTest, ChunksSealedInPlaceArriveWholeAndInOrder) {
  std::string got, expected;
  bool done = false;
  auto test = [&]() -> awaitable<void> {
    co_await connect(
        {}, [&](std::shared_ptr<TunnelStream> s) { asio::co_spawn(io_, readAllInto(s, got, done), asio::detached); });
    auto stream = client_->openConnect("www.example.com:443", "0123456789abcdef");
    const std::vector<std::pair<size_t, size_t>> chunks = {
        {9, 100}, {9, TunnelStream::kWriteChunkBytes}, {9, 30000}, {0, 20000}, {9, 4096}, {9, 1}, {9, 65000}};
    size_t seed = 0;
    for (auto [headroom, bytes] : chunks) {
      const std::string piece = pattern(bytes, ++seed);
      expected += piece;
      auto chunk = std::make_shared<ReceivedChunk>(BufferPool::local().take(), headroom, headroom + bytes);
      std::memcpy(chunk->buffer.span().data() + headroom, piece.data(), bytes);
      EXPECT_FALSE(co_await stream->writeChunk(std::move(chunk)));
    }
    EXPECT_FALSE(co_await stream->shutdownSend());
    for (int i = 0; i < 200 && !done; ++i) co_await pause(std::chrono::milliseconds(10));
  };
  run(test);
  EXPECT_TRUE(done);
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected) << "bytes differ, repeat or are out of order";
}

// Two streams writing chunks of odd sizes at once: their frames interleave in the
// batches, sealed in place or copied, and each stream's bytes arrive whole and in order.
awaitable<void> writePatternChunks(std::shared_ptr<TunnelStream> stream, size_t seed, std::string& expected) {
  for (size_t k = 0; k < 24; ++k) {
    const size_t bytes = (k * 7919 + seed * 104729) % TunnelStream::kWriteChunkBytes + 1;
    const std::string piece = pattern(bytes, k * 3 + seed);
    expected += piece;
    auto chunk =
        std::make_shared<ReceivedChunk>(BufferPool::local().take(), kH2FrameHeaderBytes, kH2FrameHeaderBytes + bytes);
    std::memcpy(chunk->buffer.span().data() + chunk->begin, piece.data(), bytes);
    EXPECT_FALSE(co_await stream->writeChunk(std::move(chunk)));
  }
  EXPECT_FALSE(co_await stream->shutdownSend());
}

TEST_F(H2TunnelTest, TwoStreamsOfChunksInterleaveIntact) {
  std::string got[2], expected[2];
  bool done[2] = {false, false};
  auto test = [&]() -> awaitable<void> {
    co_await connect({}, [&](std::shared_ptr<TunnelStream> s) {
      const int i = s->authority() == "a.example:443" ? 0 : 1;
      asio::co_spawn(io_, readAllInto(s, got[i], done[i]), asio::detached);
    });
    auto a = client_->openConnect("a.example:443", "0123456789abcdef");
    auto b = client_->openConnect("b.example:443", "fedcba9876543210");
    asio::co_spawn(io_, writePatternChunks(a, 0, expected[0]), asio::detached);
    asio::co_spawn(io_, writePatternChunks(b, 1, expected[1]), asio::detached);
    for (int i = 0; i < 500 && !(done[0] && done[1]); ++i) co_await pause(std::chrono::milliseconds(10));
  };
  run(test);
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(done[i]) << "stream " << i;
    EXPECT_EQ(got[i].size(), expected[i].size()) << "stream " << i;
    EXPECT_TRUE(got[i] == expected[i]) << "stream " << i << ": bytes differ, repeat or are out of order";
  }
}

// A peer that grants small, odd windows: the stream's chunks are cut into frames at
// every window edge, some sealed in place (4 KiB or more), some copied, each header
// written over the tail of the frame before it. The peer takes one stream's DATA to
// END_STREAM, grants each frame's bytes back in two pieces and answers PINGs.
struct SmallWindowsSeen {
  std::string data;
  std::vector<size_t> frames;
  bool ended = false;
};

awaitable<void> readWithSmallWindows(TlsStream& peer, uint32_t initialWindow, std::function<void()> send,
                                     SmallWindowsSeen& seen) {
  auto frame = [](uint8_t type, uint8_t flags, uint32_t stream, std::vector<uint8_t> payload) {
    std::vector<uint8_t> out = {static_cast<uint8_t>(payload.size() >> 16),
                                static_cast<uint8_t>(payload.size() >> 8),
                                static_cast<uint8_t>(payload.size()),
                                type,
                                flags,
                                static_cast<uint8_t>(stream >> 24),
                                static_cast<uint8_t>(stream >> 16),
                                static_cast<uint8_t>(stream >> 8),
                                static_cast<uint8_t>(stream)};
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
  };
  auto u32 = [](uint32_t v) {
    return std::vector<uint8_t>{static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
                                static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
  };
  std::vector<uint8_t> settings = {0, 4};  // SETTINGS_INITIAL_WINDOW_SIZE
  for (uint8_t b : u32(initialWindow)) settings.push_back(b);
  EXPECT_FALSE(co_await peer.writeAll(frame(4, 0, 0, settings)));
  std::vector<uint8_t> buffer(65536), pending;
  size_t at = 24;  // past the client's connection preface
  bool sent = false;
  while (!seen.ended) {
    IoResult r = co_await peer.readSome(buffer);
    if (r.error) {
      ADD_FAILURE() << "peer read: " << r.error.message();
      co_return;
    }
    pending.insert(pending.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(r.bytes));
    std::vector<uint8_t> answer;
    while (pending.size() >= at + 9) {
      const size_t length = (size_t{pending[at]} << 16) | (size_t{pending[at + 1]} << 8) | pending[at + 2];
      if (pending.size() < at + 9 + length) break;
      const uint8_t type = pending[at + 3], flags = pending[at + 4];
      const auto payload = pending.begin() + static_cast<std::ptrdiff_t>(at + 9);
      if (type == 4 && (flags & 1) && !sent) {  // our SETTINGS are in force: start the stream
        sent = true;
        send();
      } else if (type == 6 && !(flags & 1)) {
        auto ack = frame(6, 1, 0, std::vector<uint8_t>(payload, payload + 8));
        answer.insert(answer.end(), ack.begin(), ack.end());
      } else if (type == 0) {
        seen.data.append(payload, payload + static_cast<std::ptrdiff_t>(length));
        seen.frames.push_back(length);
        seen.ended = flags & 1;
        if (length > 0) {
          const uint32_t first = static_cast<uint32_t>(length / 3 + 1), rest = static_cast<uint32_t>(length) - first;
          for (auto [stream, grant] :
               {std::pair{1u, first}, std::pair{0u, first}, std::pair{1u, rest}, std::pair{0u, rest}}) {
            if (grant == 0) continue;
            auto update = frame(8, 0, stream, u32(grant));
            answer.insert(answer.end(), update.begin(), update.end());
          }
        }
      }
      at += 9 + length;
    }
    if (!answer.empty()) {
      EXPECT_FALSE(co_await peer.writeAll(answer));
    }
  }
}

TEST_F(H2TunnelTest, SmallOddWindowsCutChunksIntoFramesThatArriveIntact) {
  std::unique_ptr<TlsStream> peer;
  const uint32_t window = 5003;
  std::string expected;
  SmallWindowsSeen seen;
  auto test = [&]() -> awaitable<void> {
    co_await clientOverRawPeer(peer);
    auto send = [&] {
      auto stream = client_->openConnect("www.example.com:443", "0123456789abcdef");
      asio::co_spawn(io_, writePatternChunks(stream, 3, expected), asio::detached);
    };
    co_await readWithSmallWindows(*peer, window, send, seen);
  };
  run(test);
  EXPECT_TRUE(seen.ended);
  EXPECT_EQ(seen.data.size(), expected.size());
  EXPECT_TRUE(seen.data == expected) << "bytes differ, repeat or are out of order";
  const size_t largest = seen.frames.empty() ? 0 : *std::max_element(seen.frames.begin(), seen.frames.end());
  EXPECT_LE(largest, window) << sizesOf(seen.frames);
  // Both ways of sending a frame were taken: in place (4 KiB or more) and copied.
  EXPECT_TRUE(std::any_of(seen.frames.begin(), seen.frames.end(), [](size_t n) { return n >= 4096; }))
      << sizesOf(seen.frames);
  EXPECT_TRUE(std::any_of(seen.frames.begin(), seen.frames.end(), [](size_t n) { return n > 0 && n < 4096; }))
      << sizesOf(seen.frames);
}

awaitable<void> tlsWritePieces(TlsStream& stream, std::vector<std::string> pieces, bool closeNotify) {
  auto executor = co_await asio::this_coro::executor;
  for (const auto& piece : pieces) {
    EXPECT_FALSE(co_await stream.writeAll(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(piece.data()), piece.size())))
        << stream.lastError();
    // Apart in time: each piece is its own read on the other side.
    asio::steady_timer gap(executor, std::chrono::milliseconds(5));
    co_await gap.async_wait(use_awaitable);
  }
  if (closeNotify) {
    EXPECT_FALSE(co_await stream.shutdownSend());
  } else {
    stream.abort();  // FIN with no close_notify: a truncation attack looks like this
  }
}

awaitable<std::pair<std::string, error_code>> tlsReadAll(TlsStream& stream) {
  std::string out;
  std::vector<uint8_t> buffer(50000);
  while (true) {
    if (auto waited = co_await stream.waitReadable()) co_return std::make_pair(out, waited);
    IoResult r = co_await stream.readSome(buffer);
    if (r.error == asio::error::eof) co_return std::make_pair(out, error_code{});
    if (r.error) co_return std::make_pair(out, r.error);
    out.append(reinterpret_cast<char*>(buffer.data()), r.bytes);
  }
}

// Pieces smaller than, as large as and far larger than what one read into the inbox
// takes (4 KiB, then 16.5 KiB once one filled it): small records come from the inbox, a
// burst goes on from the socket. Every byte arrives in order, close_notify is the end,
// and the half-closed peer still answers.
TEST_F(H2TunnelTest, TlsStreamDeliversSmallAndBulkRecordsInOrderThenCloseNotify) {
  const std::vector<std::string> pieces = {pattern(1, 1),   pattern(4096, 2),     pattern(16 * 1024 + 512, 3),
                                           pattern(200, 4), pattern(1u << 20, 5), pattern(16 * 1024, 6),
                                           pattern(3, 7)};
  std::string expected;
  for (const auto& piece : pieces) expected += piece;
  auto test = [&]() -> awaitable<void> {
    auto executor = co_await asio::this_coro::executor;
    std::unique_ptr<TlsStream> client, server;
    co_await tlsPair(client, server);
    Signal written(executor);
    asio::co_spawn(executor, signalAfter(tlsWritePieces(*client, pieces, true), written), asio::detached);
    auto request = co_await tlsReadAll(*server);
    EXPECT_FALSE(request.second) << request.second.message() << " " << server->lastError();
    EXPECT_EQ(request.first.size(), expected.size());
    EXPECT_TRUE(request.first == expected) << "bytes differ or are out of order";
    co_await written.wait();
    // Named: g++ 12 cannot keep an initializer list's array across a co_await.
    std::vector<std::string> reply(1, "answer");
    co_await tlsWritePieces(*server, reply, true);
    auto answer = co_await tlsReadAll(*client);
    EXPECT_FALSE(answer.second) << answer.second.message();
    EXPECT_EQ(answer.first, std::string("answer"));
  };
  run(test, std::chrono::seconds(30));
}

// An end of the TCP stream without close_notify is not a clean end: the reader gets the
// bytes before it and then an error, never eof.
TEST_F(H2TunnelTest, TlsStreamEndWithoutCloseNotifyIsAnError) {
  auto test = [&]() -> awaitable<void> {
    auto executor = co_await asio::this_coro::executor;
    std::unique_ptr<TlsStream> client, server;
    co_await tlsPair(client, server);
    Signal written(executor);
    std::vector<std::string> pieces;
    pieces.push_back("partial");
    pieces.push_back(pattern(40000, 7));
    asio::co_spawn(executor, signalAfter(tlsWritePieces(*client, pieces, false), written), asio::detached);
    auto read = co_await tlsReadAll(*server);
    EXPECT_EQ(read.first, "partial" + pattern(40000, 7));
    EXPECT_TRUE(read.second);
    EXPECT_NE(read.second, asio::error::eof);
    // OpenSSL 3 names it ("unexpected eof while reading").
    EXPECT_NE(server->lastError().find("unexpected eof"), std::string::npos) << server->lastError();
    co_await written.wait();
  };
  run(test);
}

// A reset right behind a burst the reader has not read yet: the first read fills the
// inbox, OpenSSL reads the rest from the socket itself and meets the reset there. The
// reader gets every record, then the reset, named as one (not as an end without
// close_notify).
TEST_F(H2TunnelTest, TlsStreamResetBehindABurstIsNamedAsAReset) {
  auto test = [&]() -> awaitable<void> {
    auto executor = co_await asio::this_coro::executor;
    std::unique_ptr<TlsStream> client, server;
    co_await tlsPair(client, server);
    std::string burst = pattern(48000, 3);  // three records; the socket buffers hold them
    EXPECT_FALSE(co_await client->writeAll(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(burst.data()), burst.size())));
    client->socket().set_option(asio::socket_base::linger(true, 0));
    client->socket().close();  // a reset, behind the burst
    asio::steady_timer settle(executor, std::chrono::milliseconds(50));
    co_await settle.async_wait(use_awaitable);
    // readSome alone (no waitReadable first, which would meet the reset in its own read).
    std::string got;
    std::vector<uint8_t> buffer(50000);
    IoResult r;
    while (!(r = co_await server->readSome(buffer)).error) got.append(reinterpret_cast<char*>(buffer.data()), r.bytes);
    EXPECT_EQ(got, burst);
    EXPECT_EQ(r.error, asio::error::connection_reset) << r.error.message();
    EXPECT_EQ(server->lastError(), "socket: " + error_code(asio::error::connection_reset).message());
  };
  run(test);
}

// A peer that resets the connection while the handshake waits for it: the error is the
// reset, and lastError() (what the daemons log) names it.
TEST_F(H2TunnelTest, TlsHandshakeResetByThePeerNamesTheReset) {
  auto test = [&]() -> awaitable<void> {
    auto executor = co_await asio::this_coro::executor;
    tcp::acceptor acceptor(executor, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    tcp::socket a(executor);
    co_await a.async_connect(acceptor.local_endpoint(), use_awaitable);
    tcp::socket b = co_await acceptor.async_accept(use_awaitable);
    TlsStream server(std::move(b), serverCtx_.get(), TlsRole::Server);
    Signal serverDone(executor);
    error_code serverError;
    asio::co_spawn(executor, handshakeInto(server, serverError, serverDone), asio::detached);
    // The server's first read finds nothing and waits (a read into the inbox pending);
    // then the reset. Linger 0: close() sends a reset, not a FIN.
    asio::steady_timer settle(executor, std::chrono::milliseconds(50));
    co_await settle.async_wait(use_awaitable);
    a.set_option(asio::socket_base::linger(true, 0));
    a.close();
    co_await serverDone.wait();
    EXPECT_EQ(serverError, asio::error::connection_reset) << serverError.message();
    EXPECT_EQ(server.lastError(), "socket: " + error_code(asio::error::connection_reset).message());
  };
  run(test);
}

awaitable<void> readOnceInto(TlsStream& stream, size_t size, std::string& got, error_code& error, bool& done) {
  std::vector<uint8_t> buffer(size);
  IoResult r = co_await stream.readSome(buffer);
  got.assign(reinterpret_cast<char*>(buffer.data()), r.bytes);
  error = r.error;
  done = true;
}

// Two coroutines read one TLS stream (as the tunnel's reader and its writer do when
// OpenSSL must read the rest of a post-handshake message): the first one's read into
// the inbox empties the socket, the second must wake when that read brings the bytes,
// with no more bytes from the peer.
TEST_F(H2TunnelTest, TlsStreamSecondReaderWakesWhenThePendingReadBringsItsBytes) {
  std::string first, second;
  error_code firstError, secondError;
  bool firstDone = false, secondDone = false;
  auto test = [&]() -> awaitable<void> {
    auto executor = co_await asio::this_coro::executor;
    std::unique_ptr<TlsStream> client, server;
    co_await tlsPair(client, server);
    std::string hello = "hello";
    EXPECT_FALSE(co_await client->writeAll(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(hello.data()), hello.size())));
    asio::steady_timer arrive(executor, std::chrono::milliseconds(50));
    co_await arrive.async_wait(use_awaitable);  // the record is in the server's socket
    asio::co_spawn(executor, readOnceInto(*server, 1, first, firstError, firstDone), asio::detached);
    asio::co_spawn(executor, readOnceInto(*server, 64, second, secondError, secondDone), asio::detached);
    for (int i = 0; i < 100 && !(firstDone && secondDone); ++i) {
      asio::steady_timer t(executor, std::chrono::milliseconds(10));
      co_await t.async_wait(use_awaitable);
    }
    server->abort();  // ends a read still waiting, so the test does not hang
    client->abort();
    asio::steady_timer settle(executor, std::chrono::milliseconds(10));
    co_await settle.async_wait(use_awaitable);
  };
  run(test);
  EXPECT_TRUE(firstDone);
  EXPECT_FALSE(firstError) << firstError.message();
  EXPECT_EQ(first, "h");
  EXPECT_TRUE(secondDone);
  EXPECT_FALSE(secondError) << secondError.message();
  EXPECT_EQ(second, "ello") << "the second reader waited for bytes the first read had already taken";
}

// The origin's answer in pieces, apart in time so each is its own read, then its end
// (FIN, or a reset right behind the last piece).
awaitable<void> originAnswerInPieces(tcp::socket& socket, std::vector<std::string> pieces, bool reset) {
  auto executor = co_await asio::this_coro::executor;
  std::vector<char> buffer(4096);
  error_code ec;
  while (!ec) co_await socket.async_read_some(asio::buffer(buffer), asio::redirect_error(use_awaitable, ec));
  for (size_t i = 0; i < pieces.size(); ++i) {
    co_await asio::async_write(socket, asio::buffer(pieces[i]), asio::redirect_error(use_awaitable, ec));
    EXPECT_FALSE(ec) << ec.message();
    if (i + 1 == pieces.size()) break;  // the end follows the last piece at once
    asio::steady_timer gap(executor, std::chrono::milliseconds(5));
    co_await gap.async_wait(use_awaitable);
  }
  if (reset) {
    socket.set_option(asio::socket_base::linger(true, 0), ec);
    socket.close(ec);
  } else {
    socket.shutdown(tcp::socket::shutdown_send, ec);
  }
}

class RelayFromSocketTest : public H2TunnelTest {
 protected:
  // The agent sends "go" and its end; the origin answers `pieces` through the gateway's
  // relay, then ends (FIN, or a reset). What the agent's stream got, and how it ended.
  void relayAnswer(std::vector<std::string> pieces, bool reset) {
    auto test = [&]() -> awaitable<void> {
      auto executor = co_await asio::this_coro::executor;
      tcp::acceptor acceptor(executor, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
      tcp::socket gatewaySide(executor);
      co_await gatewaySide.async_connect(acceptor.local_endpoint(), use_awaitable);
      tcp::socket originSide = co_await acceptor.async_accept(use_awaitable);
      co_await connect({}, [&](std::shared_ptr<TunnelStream> s) {
        asio::co_spawn(io_, relayToOrigin(s, std::move(gatewaySide), relayed_, relayDone_), asio::detached);
      });
      Signal originDone(executor);
      asio::co_spawn(executor, signalAfter(originAnswerInPieces(originSide, pieces, reset), originDone),
                     asio::detached);
      auto stream = client_->openConnect("www.example.com:443", "0123456789abcdef");
      EXPECT_FALSE(co_await writeString(*stream, "go", true));
      std::tie(got_, error_) = co_await readAll(*stream);
      co_await originDone.wait();
      for (int i = 0; i < 100 && !relayDone_; ++i) {
        asio::steady_timer t(io_, std::chrono::milliseconds(10));
        co_await t.async_wait(use_awaitable);
      }
    };
    run(test, std::chrono::seconds(30));
  }
  RelayResult relayed_;
  bool relayDone_ = false;
  std::string got_;
  error_code error_;
};

TEST_F(RelayFromSocketTest, EveryByteOfPiecesLargeAndSmallThenTheEnd) {
  // Around one relay buffer (64 KiB), and far more.
  const std::vector<std::string> pieces = {pattern(255, 1), pattern(65536, 2),  pattern(65537, 3),
                                           pattern(1, 4),   pattern(300000, 5), pattern(256, 6)};
  std::string expected;
  for (const auto& piece : pieces) expected += piece;
  relayAnswer(pieces, false);
  EXPECT_FALSE(error_) << error_.message();
  EXPECT_EQ(got_.size(), expected.size());
  EXPECT_TRUE(got_ == expected) << "bytes differ or are out of order";
  EXPECT_TRUE(relayDone_);
  EXPECT_TRUE(relayed_.clean()) << relayed_.outcome();
  EXPECT_EQ(relayed_.bytesBtoA, expected.size());
}

// A reset behind a burst larger than one relay buffer is passed on as a reset.
TEST_F(RelayFromSocketTest, OriginResetRightBehindItsBytesReachesTheAgentAsReset) {
  // The reset is in the socket with the bytes before it: the socket reports it once,
  // and the relay must pass it on, not read an end of stream after it.
  relayAnswer({pattern(256, 1)}, true);
  EXPECT_EQ(error_, asio::error::connection_reset) << error_.message();
  EXPECT_TRUE(relayDone_);
  EXPECT_FALSE(relayed_.clean());
}

TEST_F(RelayFromSocketTest, OriginResetBehindABurstReachesTheAgentAsReset) {
  relayAnswer({pattern(256, 1), pattern(100000, 2)}, true);  // more than one relay buffer
  EXPECT_EQ(error_, asio::error::connection_reset) << error_.message();
  EXPECT_LE(got_.size(), 256u + 100000u);
  EXPECT_TRUE(relayDone_);
  EXPECT_FALSE(relayed_.clean());
}

}  // namespace
}  // namespace sluice
