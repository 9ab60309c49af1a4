// The gateway's dial ends when it is cancelled (the drain's deadline) while its connects
// are pending: one address, or a Happy Eyeballs race of two, to loopback listeners whose
// accept queues are full (the kernel drops the SYNs, so the connects wait).
#include "upstream_dialer.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "loopback_pair.h"

namespace sluice {
namespace {

using boost::system::error_code;
using test::FullListener;

// Connects in SYN-SENT to 127.0.0.x:`port` (from /proc/net/tcp: state 02; the remote
// address in hex, bytes in the kernel's order, so 127 is the last of them).
int pendingConnects(uint16_t port) {
  std::ifstream table("/proc/net/tcp");
  std::string line;
  std::getline(table, line);  // the header
  int count = 0;
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    fields >> slot >> local >> remote >> state;
    const size_t colon = remote.find(':');
    if (state == "02" && colon == 8 && remote.substr(6, 2) == "7F" &&
        std::stoul(remote.substr(colon + 1), nullptr, 16) == port) {
      ++count;
    }
  }
  return count;
}

struct DialOutcome {
  std::string failure = "(not ended)";
  bool connected = false;
};

awaitable<void> dialInto(UpstreamDialer& dialer, DialRules rules, UpstreamDestination destination, DialOutcome& out) {
  DialResult result = co_await dialer.dial(rules, destination, "test");
  out.failure = result.failure;
  out.connected = result.socket.is_open();
}

// A dial to loopback addresses 127.0.0.1.. on one port, its connect timeout far past the
// test's own limit: only the cancel ends it.
struct CancellableDial {
  CancellableDial(asio::io_context& io, uint16_t port, int addresses) : dialer(io) {
    destination.port = port;
    for (int i = 0; i < addresses; ++i) {
      destination.addressesBe.push_back(htonl(0x7f000001u + static_cast<uint32_t>(i)));
    }
  }
  void start(asio::io_context& io, DialOutcome& out) {
    asio::co_spawn(io,
                   dialInto(dialer, DialRules{guard, 0, std::chrono::milliseconds(60000), &cancel}, destination, out),
                   asio::detached);
  }
  UpstreamDestination destination;
  const AddressGuard guard;
  DialCancel cancel;
  UpstreamDialer dialer;
};

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
  CancellableDial dial(io, port, addresses);
  DialOutcome out;
  dial.start(io, out);
  // Past the attempt delay: with two addresses, both connects are pending.
  for (int i = 0; i < 100 && pendingConnects(port) < addresses; ++i) io.run_for(std::chrono::milliseconds(20));
  ASSERT_EQ(out.failure, "(not ended)") << "the dial ended before the cancel: the SYNs were not dropped";
  ASSERT_EQ(pendingConnects(port), addresses) << "not every address's connect is pending";
  dial.cancel.cancel("drain-deadline");
  io.run_for(std::chrono::milliseconds(200));
  EXPECT_EQ(out.failure, "drain-deadline");
  EXPECT_FALSE(out.connected);
  EXPECT_EQ(pendingConnects(port), 0) << "a cancelled connect is still pending";
  // A dial that starts after the cancel does not connect anything.
  DialOutcome late;
  io.restart();  // it ran out of work when the first dial ended
  dial.start(io, late);
  io.run_for(std::chrono::milliseconds(200));
  EXPECT_EQ(late.failure, "drain-deadline");
}

INSTANTIATE_TEST_SUITE_P(OneAddressAndARace, UpstreamDialerCancelTest, ::testing::Values(1, 2));

// A cancel that comes after the race started an attempt but before the attempt ran (it
// was queued on the loop behind it) closes the socket first: the attempt must not open
// it again (asio's connect would, unmarked) and reach an origin that accepts.
TEST(UpstreamDialerCancelRaceTest, CancelBeforeAnAttemptRunsConnectsNothing) {
  asio::io_context io;
  tcp::acceptor origin(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));  // accepts (in the kernel)
  tcp::acceptor other(io, tcp::endpoint(asio::ip::make_address("127.0.0.2"), origin.local_endpoint().port()));
  CancellableDial dial(io, origin.local_endpoint().port(), 2);
  DialOutcome out;
  dial.start(io, out);
  asio::post(io, [&dial] { dial.cancel.cancel("drain-deadline"); });  // after the dial's first step, before its attempt
  io.run_for(std::chrono::milliseconds(500));
  EXPECT_EQ(out.failure, "drain-deadline");
  EXPECT_FALSE(out.connected);
  for (tcp::acceptor* listener : {&origin, &other}) {
    listener->non_blocking(true);
    error_code ec;
    tcp::socket accepted = listener->accept(ec);
    EXPECT_EQ(ec, asio::error::would_block) << "a connection reached " << listener->local_endpoint();
  }
}

}  // namespace
}  // namespace sluice
