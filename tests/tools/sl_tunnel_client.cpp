// sl-tunnel-client: plays the agent's side of the tunnel by hand, for tests. Opens mTLS
// (ALPN h2) to a gateway, sends one CONNECT for --authority with stdin's bytes behind it,
// prints "status=N result=R" and then, for a 200, what came back and how it ended:
// "end=eof bytes=N" or "end=reset reason=...".
//
//   sl-tunnel-client --gateway 198.18.3.2:15443 --ca ca.pem --cert agent.pem --key agent.key
//     --authority www.example.com:443 [--connection-id 0123456789abcdef] [--wait-ms 5000] < hello.bin
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "h2_tunnel.h"
#include "tls_context.h"

using namespace sluice;

namespace {

struct Options {
  std::map<std::string, std::string> values;
  std::string get(const std::string& key, const std::string& fallback = "") const {
    auto it = values.find(key);
    return it == values.end() ? fallback : it->second;
  }
};

awaitable<int> session(Options options, SSL_CTX* ctx, std::string input) {
  auto executor = co_await asio::this_coro::executor;
  std::string gateway = options.get("gateway");
  auto colon = gateway.rfind(':');
  std::string host = gateway.substr(0, colon);
  if (host.starts_with("[")) host = host.substr(1, host.size() - 2);
  tcp::endpoint endpoint(asio::ip::make_address(host), static_cast<uint16_t>(std::stoi(gateway.substr(colon + 1))));
  tcp::socket socket(executor);
  boost::system::error_code ec;
  co_await socket.async_connect(endpoint, asio::redirect_error(use_awaitable, ec));
  if (ec) {
    std::cout << "connect-failed " << ec.message() << std::endl;
    co_return 2;
  }
  auto tls = std::make_unique<TlsStream>(std::move(socket), ctx, TlsRole::Client);
  static const unsigned char kH2[] = {2, 'h', '2'};
  SSL_set_alpn_protos(tls->ssl(), kH2, sizeof(kH2));
  if (auto e = co_await tls->handshake()) {
    std::cout << "handshake-failed " << tls->lastError() << std::endl;
    co_return 2;
  }
  std::cout << "peer=" << peerSpiffeId(tls->ssl()).value_or("-") << std::endl;
  auto connection = std::make_shared<H2Connection>(std::move(tls), H2Role::Client, H2Settings{});
  asio::co_spawn(executor, connection->run(), asio::detached);
  auto stream = connection->openConnect(options.get("authority"), options.get("connection-id", "0123456789abcdef"));
  if (!input.empty()) {
    co_await stream->writeAll(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(input.data()), input.size()));
  }
  co_await stream->waitResponse();
  std::cout << "status=" << stream->status() << " result=" << (stream->result().empty() ? "-" : stream->result())
            << std::endl;
  int rc = stream->status() == 200 ? 0 : 1;
  if (stream->status() == 200) {
    Deadline deadline(executor, std::chrono::milliseconds(std::stoi(options.get("wait-ms", "3000"))),
                      [&stream] { stream->abort(); });
    std::vector<uint8_t> buffer(65536);
    uint64_t total = 0;
    while (true) {
      IoResult r = co_await stream->readSome(buffer);
      if (r.error == asio::error::eof) {
        std::cout << "end=eof bytes=" << total << std::endl;
        break;
      }
      if (r.error) {
        std::cout << "end=" << (deadline.expired() ? "timeout" : "reset") << " reason=" << stream->resetReason()
                  << " bytes=" << total << std::endl;
        break;
      }
      total += r.bytes;
    }
  }
  stream->abort();
  connection->close("done");
  co_return rc;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strncmp(argv[i], "--", 2) != 0) {
      std::cerr << "usage: see the file's header\n";
      return 2;
    }
    options.values[argv[i] + 2] = argv[i + 1];
  }
  std::string input;
  if (options.get("stdin", "yes") == "yes" && !isatty(0)) {
    char chunk[4096];
    size_t n;
    while ((n = std::fread(chunk, 1, sizeof(chunk), stdin)) > 0) input.append(chunk, n);
  }
  try {
    auto ctx = makeMeshTlsContext({options.get("ca"), options.get("cert"), options.get("key")}, TlsRole::Client);
    asio::io_context io;
    int rc = 2;
    asio::co_spawn(io, session(options, ctx.get(), input),
                   [&](std::exception_ptr e, int value) { rc = e ? 2 : value; });
    io.run_for(std::chrono::seconds(30));
    return rc;
  } catch (const std::exception& e) {
    std::cerr << "sl-tunnel-client: " << e.what() << "\n";
    return 2;
  }
}
