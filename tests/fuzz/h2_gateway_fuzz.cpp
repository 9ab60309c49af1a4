// libFuzzer: HTTP/2 frames from an authenticated agent into the gateway's side of the
// tunnel. Each input is what a peer sends after the client preface, over a real mTLS
// connection (socketpair, handshake done with mesh certificates made at start-up), into
// an H2Connection in the server role whose streams are handled as the gateway handles
// them: method and :authority checked, refused (403/400 with sluice-result) or answered
// 200 and relayed (echoed here, standing in for the origin socket), resets passed on.
// Any crash, sanitizer report, hang or unbounded growth is a finding.
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "h2_tunnel.h"
#include "test_certificates.h"
#include "tls_context.h"

using namespace sluice;

namespace {

SslCtxPtr gClient;
SslCtxPtr gServer;

// As GatewayServer::handleStream, with an echo in place of the origin.
awaitable<void> gatewayStream(std::shared_ptr<TunnelStream> stream) {
  const std::string& authority = stream->authority();
  if (std::getenv("SL_FUZZ_DEBUG")) std::fprintf(stderr, "stream %s %s\n", stream->method().c_str(), authority.c_str());
  if (stream->method() != "CONNECT" || authority.find(':') == std::string::npos) {
    stream->respond(400, "bad-authority");
    co_return;
  }
  if (authority.starts_with("deny")) {
    stream->respond(403, "host-not-allowed");
    co_return;
  }
  stream->respond(200, "");
  std::vector<uint8_t> buffer(4096);
  for (int i = 0; i < 64; ++i) {
    IoResult r = co_await stream->readSome(buffer);
    if (r.error == asio::error::eof) {
      co_await stream->shutdownSend();
      co_return;
    }
    if (r.error) break;
    if (co_await stream->writeAll(std::span<const uint8_t>(buffer.data(), r.bytes))) break;
  }
  stream->abort();
}

awaitable<void> handshake(TlsStream& stream, bool& ok) {
  ok = !co_await stream.handshake();
}

awaitable<void> send(TlsStream& stream, std::string bytes, bool& done) {
  co_await stream.writeAll(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  done = true;
}

awaitable<void> drain(TlsStream& stream) {
  std::vector<uint8_t> buffer(65536);
  while (true) {
    IoResult r = co_await stream.readSome(buffer);
    if (r.error) co_return;
  }
}

// Runs ready handlers until nothing is left to do now (or a bound is hit).
void settle(asio::io_context& io) {
  for (int i = 0; i < 2000; ++i) {
    io.restart();  // a poll that ran out of work leaves the context stopped
    if (io.poll() == 0) break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::signal(SIGPIPE, SIG_IGN);  // as the daemons: a write to a closed peer is an error, not a death
  char templ[] = "/tmp/sluice-h2-fuzz.XXXXXX";
  std::filesystem::path dir = mkdtemp(templ);
  test_pki::TestMeshCa ca(dir);
  test_pki::CertSpec agent, gateway;
  agent.sans = "URI:spiffe://test/sa/agent";
  gateway.sans = "URI:spiffe://test/sa/gateway";
  ca.issue("agent", agent);
  ca.issue("gateway", gateway);
  gClient = makeMeshTlsContext({ca.caFile(), dir / "agent.pem", dir / "agent.key"}, TlsRole::Client);
  gServer = makeMeshTlsContext({ca.caFile(), dir / "gateway.pem", dir / "gateway.key"}, TlsRole::Server);
  std::filesystem::remove_all(dir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0) std::abort();
  asio::io_context io;
  tcp::socket a(io), b(io);
  a.assign(tcp::v4(), fds[0]);
  b.assign(tcp::v4(), fds[1]);
  auto client = std::make_unique<TlsStream>(std::move(a), gClient.get(), TlsRole::Client);
  auto server = std::make_unique<TlsStream>(std::move(b), gServer.get(), TlsRole::Server);
  bool clientOk = false, serverOk = false;
  asio::co_spawn(io, handshake(*client, clientOk), asio::detached);
  asio::co_spawn(io, handshake(*server, serverOk), asio::detached);
  settle(io);
  if (!clientOk || !serverOk) std::abort();  // the harness itself is broken

  H2Settings settings;
  settings.maxConcurrentStreams = 16;
  settings.streamWindow = 65536;
  settings.connectionWindow = 1 << 20;
  auto connection = std::make_shared<H2Connection>(std::move(server), H2Role::Server, settings);
  connection->onRequest = [&io](std::shared_ptr<TunnelStream> stream) {
    asio::co_spawn(io, gatewayStream(std::move(stream)), asio::detached);
  };
  asio::co_spawn(io, connection->run(), asio::detached);
  asio::co_spawn(io, drain(*client), asio::detached);
  std::string bytes = std::string(NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
  bytes.append(reinterpret_cast<const char*>(data), size);
  bool sent = false;
  asio::co_spawn(io, send(*client, std::move(bytes), sent), asio::detached);
  settle(io);
  // The agent goes away: every stream must end and the connection close.
  client->abort();
  settle(io);
  if (std::getenv("SL_FUZZ_DEBUG"))
    std::fprintf(stderr, "sent=%d closed=%s\n", sent, connection->closeReason().c_str());
  connection->close("fuzz-end");
  settle(io);
  connection->onRequest = nullptr;
  return 0;
}
