// The gateway's dial ends when it is cancelled (the drain's deadline) while its connects
// are pending: one address, or a Happy Eyeballs race of two, to loopback listeners whose
// accept queues are full (the kernel drops the SYNs, so the connects wait).
#include "upstream_dialer.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice {
namespace {

using boost::system::error_code;

// A listener on `address` that takes no connection: one client fills its queue, and the
// kernel then drops every later SYN to it.
struct FullListener {
  FullListener(asio::io_context& io, const std::string& address, uint16_t port) : acceptor(io), filler(io) {
    const tcp::endpoint endpoint(asio::ip::make_address(address), port);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(0);
    filler.connect(acceptor.local_endpoint());
  }
  tcp::acceptor acceptor;
  tcp::socket filler;
};

struct DialOutcome {
  std::string failure = "(not ended)";
  bool connected = false;
};

awaitable<void> dialInto(UpstreamDialer& dialer, DialRules rules, UpstreamDestination destination, DialOutcome& out) {
  DialResult result = co_await dialer.dial(rules, destination, "test");
  out.failure = result.failure;
  out.connected = result.socket.is_open();
}

class UpstreamDialerCancelTest : public ::testing::TestWithParam<int> {};

TEST_P(UpstreamDialerCancelTest, CancelEndsPendingConnects) {
  const int addresses = GetParam();
  asio::io_context io;
  // A port chosen by the kernel for the first listener, taken on the others' addresses too.
  std::vector<std::unique_ptr<FullListener>> listeners;
  listeners.push_back(std::make_unique<FullListener>(io, "127.0.0.1", 0));
  const uint16_t port = listeners.front()->acceptor.local_endpoint().port();
  for (int i = 1; i < addresses; ++i) {
    listeners.push_back(std::make_unique<FullListener>(io, "127.0.0." + std::to_string(i + 1), port));
  }
  UpstreamDestination destination;
  destination.port = port;
  for (int i = 0; i < addresses; ++i) destination.addressesBe.push_back(htonl(0x7f000001u + static_cast<uint32_t>(i)));
  const AddressGuard guard;
  DialCancel cancel;
  // The connect timeout is far past the test's own limit: only the cancel ends the dial.
  const DialRules rules{guard, 0, std::chrono::milliseconds(60000), &cancel};
  UpstreamDialer dialer(io);
  DialOutcome out;
  asio::co_spawn(io, dialInto(dialer, rules, destination, out), asio::detached);
  // Past the attempt delay: with two addresses, both connects are pending.
  io.run_for(UpstreamDialer::kAttemptDelay + std::chrono::milliseconds(250));
  ASSERT_EQ(out.failure, "(not ended)") << "the dial ended before the cancel: the SYNs were not dropped";
  cancel.cancel();
  io.run_for(std::chrono::milliseconds(200));
  EXPECT_EQ(out.failure, "drain-deadline");
  EXPECT_FALSE(out.connected);
  // A dial that starts after the cancel does not connect anything.
  DialOutcome late;
  io.restart();  // it ran out of work when the first dial ended
  asio::co_spawn(io, dialInto(dialer, rules, destination, late), asio::detached);
  io.run_for(std::chrono::milliseconds(200));
  EXPECT_EQ(late.failure, "drain-deadline");
}

INSTANTIATE_TEST_SUITE_P(OneAddressAndARace, UpstreamDialerCancelTest, ::testing::Values(1, 2));

}  // namespace
}  // namespace sluice
