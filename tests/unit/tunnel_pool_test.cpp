// The pool's wait for a tunnel when none is up yet (its connects pending): the caller's
// give-up (the drain's reset of the flow) ends it, without waiting out the connect timeout.
#include "tunnel_pool.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <set>
#include <string>

#include "loopback_pair.h"
#include "test_certificates.h"
#include "tls_context.h"

namespace sluice {
namespace {

using test::FullListener;

awaitable<void> openInto(TunnelPool& pool, const std::function<bool()>& giveUp,
                         std::optional<TunnelPool::Opened>& opened) {
  // Named, not temporaries inside the co_await (g++ 12, see ReceivedChunk).
  const std::string authority = "www.example.com:443", connectionId = "0123456789abcdef";
  const std::set<std::string> exclude;
  opened = co_await pool.open(authority, connectionId, exclude, giveUp);
}

TEST(TunnelPoolTest, GiveUpEndsTheWaitForATunnel) {
  const auto dir = std::filesystem::temp_directory_path() / ("sluice-pool-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    test_pki::TestMeshCa ca(dir);
    test_pki::CertSpec spec;
    spec.sans = "URI:spiffe://test/sa/agent";
    ca.issue("agent", spec);
    std::shared_ptr<SSL_CTX> context(
        makeMeshTlsContext({ca.caFile(), dir / "agent.pem", dir / "agent.key"}, TlsRole::Client).release(),
        SSL_CTX_free);
    asio::io_context io;
    FullListener gateway(io, "127.0.0.1", 0);  // the pool's connects to it stay pending
    TunnelPool pool(io, [context] { return context; });
    TunnelPoolSettings settings;
    settings.gateways = {GatewayTarget{"127.0.0.1", gateway.port()}};
    settings.identity = "spiffe://test/sa/gateway";
    settings.serverName = "gateway.test";
    settings.connectTimeout = std::chrono::seconds(60);  // far past the test: only the give-up ends the wait
    pool.configure(settings);
    bool giveUp = false;
    const std::function<bool()> asked = [&giveUp] { return giveUp; };
    std::optional<TunnelPool::Opened> opened;
    asio::co_spawn(io, openInto(pool, asked, opened), asio::detached);
    io.run_for(std::chrono::milliseconds(200));
    EXPECT_FALSE(opened.has_value()) << "the wait ended before the give-up: " << opened->failure;
    giveUp = true;
    io.run_for(std::chrono::milliseconds(200));
    ASSERT_TRUE(opened.has_value()) << "the give-up did not end the wait";
    EXPECT_EQ(opened->failure, "given-up");
    EXPECT_FALSE(opened->stream);
    pool.stop();
    io.run_for(std::chrono::milliseconds(100));
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sluice
