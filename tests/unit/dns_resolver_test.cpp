// The gateway's resolver against a real DNS server (dnsmasq on 127.0.0.1, a free port),
// which forwards names under slow.test to a socket that never answers: the slow-server
// case of a wildcard whose random names stall.
#include "dns_resolver.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "upstream_dialer.h"

namespace sluice {
namespace {

using namespace std::chrono_literals;

// A bound UDP socket on 127.0.0.1 (port chosen by the kernel), never read.
struct SilentServer {
  SilentServer() {
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t length = sizeof(a);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &length);
    port = ntohs(a.sin_port);
  }
  ~SilentServer() { close(fd); }
  int fd = -1;
  uint16_t port = 0;
};

uint16_t freePort() {
  SilentServer probe;  // a UDP port free now (dnsmasq takes it right after)
  return probe.port;
}

class DnsResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = freePort();
    const char* user = getpwuid(getuid())->pw_name;
    std::vector<std::string> args = {"dnsmasq",
                                     "--keep-in-foreground",
                                     "--no-resolv",
                                     "--no-hosts",
                                     "--no-poll",
                                     "--bind-interfaces",
                                     "--listen-address=127.0.0.1",
                                     "--port=" + std::to_string(port_),
                                     "--pid-file",
                                     std::string("--user=") + user,
                                     "--local-ttl=1",
                                     "--dns-forward-max=1000",
                                     "--host-record=both.test,198.18.100.10,2001:db8:100::10",
                                     "--host-record=v4.test,198.18.100.11",
                                     "--host-record=v6.test,2001:db8:100::12",
                                     "--host-record=ready.test,198.18.100.13",
                                     "--address=/nx.test/",
                                     "--server=/slow.test/127.0.0.1#" + std::to_string(silent_.port)};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // (fork and exec: the project's own "spawn.h" shadows <spawn.h> on the include path)
    pid_ = fork();
    if (pid_ == 0) {
      execvp("dnsmasq", argv.data());
      _exit(127);
    }
    ASSERT_GT(pid_, 0);
    // Ready when it answers.
    for (int i = 0; i < 100; ++i) {
      auto r = resolveOnce("ready.test", 200ms, DnsCacheLimits{0ms, 0ms, 10});
      if (!r.addresses.empty()) return;
      usleep(50'000);
    }
    FAIL() << "dnsmasq did not answer on 127.0.0.1:" << port_;
  }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }

  DnsResolverOptions options(std::chrono::milliseconds timeout, DnsCacheLimits cache) const {
    DnsResolverOptions o;
    o.server = Ipv4Endpoint{htonl(INADDR_LOOPBACK), port_};
    o.timeout = timeout;
    o.cache = cache;
    return o;
  }

  ResolveResult resolveOnce(const std::string& host, std::chrono::milliseconds timeout, DnsCacheLimits cache) {
    asio::io_context io;
    DnsResolver resolver(io, options(timeout, cache));
    return run(io, resolver, host);
  }

  static ResolveResult run(asio::io_context& io, DnsResolver& resolver, const std::string& host) {
    ResolveResult out;
    asio::co_spawn(io, resolver.resolve(host), [&](std::exception_ptr e, ResolveResult r) {
      if (e) std::rethrow_exception(e);
      out = std::move(r);
    });
    io.restart();
    io.run();
    return out;
  }

  SilentServer silent_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

std::string text(const std::vector<IpAddress>& addresses) {
  std::string out;
  for (const auto& a : addresses) out += (out.empty() ? "" : ",") + formatIp(a);
  return out;
}

TEST_F(DnsResolverTest, AnswersAAndAaaa) {
  auto r = resolveOnce("both.test", 2000ms, {});
  EXPECT_EQ(r.error, "");
  EXPECT_NE(text(r.addresses).find("198.18.100.10"), std::string::npos) << text(r.addresses);
  EXPECT_NE(text(r.addresses).find("2001:db8:100::10"), std::string::npos) << text(r.addresses);
  EXPECT_EQ(text(resolveOnce("v6.test", 2000ms, {}).addresses), "2001:db8:100::12");
  EXPECT_EQ(text(resolveOnce("v4.test", 2000ms, {}).addresses), "198.18.100.11");
}

TEST_F(DnsResolverTest, CachesWithinTheRecordTtlOnly) {
  asio::io_context io;
  DnsResolver resolver(io, options(2000ms, DnsCacheLimits{60'000ms, 1000ms, 100}));
  auto first = run(io, resolver, "v4.test");
  EXPECT_FALSE(first.cached);
  auto second = run(io, resolver, "v4.test");
  EXPECT_TRUE(second.cached);
  EXPECT_EQ(resolver.queriesSent(), 1u);
  // dnsmasq serves its records with TTL 1 s (--local-ttl): the cap of 60 s does not keep it.
  usleep(1'100'000);
  auto third = run(io, resolver, "v4.test");
  EXPECT_FALSE(third.cached);
  EXPECT_EQ(resolver.queriesSent(), 2u);
  EXPECT_EQ(text(third.addresses), "198.18.100.11");
}

TEST_F(DnsResolverTest, AShortTtlIsRaisedToTheFloor) {
  asio::io_context io;
  DnsCacheLimits limits{60'000ms, 1000ms, 100};
  limits.minPositive = 3000ms;
  DnsResolver resolver(io, options(2000ms, limits));
  EXPECT_FALSE(run(io, resolver, "v4.test").cached);
  // Past the record's TTL of 1 s, within the floor of 3 s: no second query.
  usleep(1'200'000);
  auto second = run(io, resolver, "v4.test");
  EXPECT_TRUE(second.cached);
  EXPECT_EQ(resolver.queriesSent(), 1u);
  EXPECT_EQ(text(second.addresses), "198.18.100.11");
}

TEST_F(DnsResolverTest, ConcurrentLookupsOfOneNameShareOneQuery) {
  asio::io_context io;
  DnsResolver resolver(io, options(2000ms, DnsCacheLimits{0ms, 0ms, 100}));  // no cache: only single flight
  std::vector<ResolveResult> results;
  for (int i = 0; i < 50; ++i) {
    asio::co_spawn(io, resolver.resolve("both.test"),
                   [&](std::exception_ptr, ResolveResult r) { results.push_back(std::move(r)); });
  }
  io.run();
  ASSERT_EQ(results.size(), 50u);
  EXPECT_EQ(resolver.queriesSent(), 1u);
  for (const auto& r : results) EXPECT_EQ(r.addresses.size(), 2u) << r.error;
}

TEST_F(DnsResolverTest, FailuresAreCachedBriefly) {
  asio::io_context io;
  DnsResolver resolver(io, options(2000ms, DnsCacheLimits{5000ms, 300ms, 100}));
  auto first = run(io, resolver, "x.nx.test");
  EXPECT_TRUE(first.addresses.empty());
  EXPECT_FALSE(first.error.empty());
  auto second = run(io, resolver, "x.nx.test");
  EXPECT_TRUE(second.cached);
  EXPECT_EQ(second.error, first.error);
  EXPECT_EQ(resolver.queriesSent(), 1u);
  usleep(400'000);
  auto third = run(io, resolver, "x.nx.test");
  EXPECT_FALSE(third.cached);
  EXPECT_EQ(resolver.queriesSent(), 2u);
}

TEST_F(DnsResolverTest, EachLookupHasADeadline) {
  asio::io_context io;
  DnsResolver resolver(io, options(500ms, {}));
  auto started = std::chrono::steady_clock::now();
  auto r = run(io, resolver, "a.slow.test");
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_TRUE(r.addresses.empty());
  EXPECT_EQ(r.error, "timed out after 500 ms");
  EXPECT_LT(took, 2000ms) << "the deadline ended the lookup";  // a bound, not a speed claim
}

// A cancel (the drain's deadline) ends one caller's wait for a lookup at once; another
// caller of the same lookup goes on waiting, and gets its answer (here, its deadline).
TEST_F(DnsResolverTest, ACancelEndsOneWaiterOnly) {
  asio::io_context io;
  DnsResolver resolver(io, options(1500ms, {}));
  DialCancel cancel;
  std::optional<ResolveResult> cancelled, other;
  asio::co_spawn(io, resolver.resolve("c.slow.test", &cancel),
                 [&](std::exception_ptr, ResolveResult r) { cancelled = std::move(r); });
  asio::co_spawn(io, resolver.resolve("c.slow.test"),
                 [&](std::exception_ptr, ResolveResult r) { other = std::move(r); });
  io.run_for(200ms);
  EXPECT_FALSE(cancelled.has_value()) << "the silent server answered";
  cancel.cancel("drain-deadline");
  io.run_for(100ms);
  ASSERT_TRUE(cancelled.has_value()) << "the cancel did not end the wait";
  EXPECT_EQ(cancelled->error, "cancelled");
  EXPECT_TRUE(cancelled->addresses.empty());
  EXPECT_FALSE(other.has_value()) << "the cancel ended the other caller's wait too";
  io.run();
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->error, "timed out after 1500 ms");
  EXPECT_EQ(resolver.queriesSent(), 1u);
}

// Random names under a wildcard served by a silent server must not delay other names:
// 200 such lookups are pending while an ordinary name is asked and answered.
TEST_F(DnsResolverTest, ASlowServerForSomeNamesDoesNotBlockOthers) {
  asio::io_context io;
  DnsResolver resolver(io, options(2000ms, {}));
  size_t slowDone = 0;
  for (int i = 0; i < 200; ++i) {
    asio::co_spawn(io, resolver.resolve("r" + std::to_string(i) + ".slow.test"),
                   [&](std::exception_ptr, ResolveResult r) {
                     EXPECT_TRUE(r.addresses.empty());
                     ++slowDone;
                   });
  }
  std::optional<ResolveResult> fast;
  size_t slowPendingWhenFastAnswered = 0;
  asio::steady_timer later(io, 100ms);  // the slow lookups are on the wire by then
  later.async_wait([&](const boost::system::error_code&) {
    asio::co_spawn(io, resolver.resolve("v4.test"), [&](std::exception_ptr, ResolveResult r) {
      fast = std::move(r);
      slowPendingWhenFastAnswered = 200 - slowDone;
      std::printf("ordinary name answered with %zu slow lookups pending\n", slowPendingWhenFastAnswered);
    });
  });
  io.run();
  ASSERT_TRUE(fast.has_value());
  EXPECT_EQ(text(fast->addresses), "198.18.100.11") << fast->error;
  EXPECT_EQ(slowPendingWhenFastAnswered, 200u) << "the ordinary name waited for the slow ones";
  EXPECT_EQ(slowDone, 200u);
}

TEST(DnsCacheTest, EvictsTheLeastRecentlyUsedNeverAll) {
  DnsCache cache(DnsCacheLimits{60'000ms, 1000ms, 2});
  auto a = IpAddress::fromV4(htonl(0x01020304));
  cache.putAnswer("a", {a}, 30s);
  cache.putAnswer("b", {a}, 30s);
  ASSERT_TRUE(cache.find("a"));  // a is now the most recent
  cache.putAnswer("c", {a}, 30s);
  EXPECT_TRUE(cache.find("a"));
  EXPECT_FALSE(cache.find("b"));
  EXPECT_TRUE(cache.find("c"));
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.evictions(), 1u);
}

TEST(DnsCacheTest, TtlCappedByTheRulesAndZeroDisables) {
  auto now = DnsCache::Clock::now();
  auto a = IpAddress::fromV4(htonl(0x01020304));
  DnsCache capped(DnsCacheLimits{2000ms, 1000ms, 10});
  capped.putAnswer("a", {a}, 300s, now);
  EXPECT_TRUE(capped.find("a", now + 1900ms));
  EXPECT_FALSE(capped.find("a", now + 2001ms));
  DnsCache off(DnsCacheLimits{0ms, 1000ms, 10});
  off.putAnswer("a", {a}, 300s, now);
  off.putFailure("b", "x", now);
  EXPECT_FALSE(off.find("a", now));
  EXPECT_FALSE(off.find("b", now));
  DnsCache ttl0(DnsCacheLimits{5000ms, 1000ms, 10});
  ttl0.putAnswer("a", {a}, 0s, now);
  EXPECT_FALSE(ttl0.find("a", now));
}

TEST(DnsCacheTest, TtlRaisedToTheFloorWhichTheCapBounds) {
  auto now = DnsCache::Clock::now();
  auto a = IpAddress::fromV4(htonl(0x01020304));
  DnsCache floored(DnsCacheLimits{5000ms, 1000ms, 10, 1000ms});
  floored.putAnswer("zero", {a}, 0s, now);
  floored.putAnswer("long", {a}, 3s, now);
  EXPECT_TRUE(floored.find("zero", now + 999ms));
  EXPECT_FALSE(floored.find("zero", now + 1001ms));
  EXPECT_TRUE(floored.find("long", now + 2900ms));  // a TTL above the floor is kept as it is
  EXPECT_FALSE(floored.find("long", now + 3001ms));
  DnsCache capped(DnsCacheLimits{500ms, 1000ms, 10, 1000ms});
  capped.putAnswer("zero", {a}, 0s, now);
  EXPECT_TRUE(capped.find("zero", now + 499ms));
  EXPECT_FALSE(capped.find("zero", now + 501ms));
  DnsCache off(DnsCacheLimits{0ms, 1000ms, 10, 1000ms});
  off.putAnswer("zero", {a}, 0s, now);
  EXPECT_FALSE(off.find("zero", now));
}

TEST(HappyEyeballsOrderTest, InterleavesFamiliesStartingWithIpv6) {
  auto v4 = [](uint32_t n) { return IpAddress::fromV4(htonl(n)); };
  auto v6 = [](uint8_t n) {
    Ipv6Address a{};
    a[0] = 0x20;
    a[15] = n;
    return IpAddress::fromV6(a);
  };
  auto order = interleaveFamilies({v4(1), v4(2), v4(3), v6(1), v6(2)});
  ASSERT_EQ(order.size(), 5u);
  EXPECT_EQ(order[0], v6(1));
  EXPECT_EQ(order[1], v4(1));
  EXPECT_EQ(order[2], v6(2));
  EXPECT_EQ(order[3], v4(2));
  EXPECT_EQ(order[4], v4(3));
}

}  // namespace
}  // namespace sluice
