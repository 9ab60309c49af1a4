#include "upstream_dialer.h"

#include <spdlog/spdlog.h>

#include <memory>
#include <mutex>

#include "asio_address.h"
#include "marked_socket.h"

namespace sluice {
namespace {

bool cancelled(const DialRules& rules) {
  return isCancelled(rules.cancel);
}

std::string upstreamText(const IpAddress& address, uint16_t port) {
  return (address.isV6 ? "[" + formatIp(address) + "]" : formatIp(address)) + ":" + std::to_string(port);
}

// The race of one dial: attempts report here and wake the dialer.
struct Race {
  explicit Race(asio::any_io_executor executor) : wake(executor) {}
  std::vector<std::unique_ptr<tcp::socket>> sockets;
  std::vector<bool> finished;
  int winner = -1;
  size_t failed = 0;
  std::string lastError;
  bool changed = false;
  asio::steady_timer wake;
  void notify() {
    changed = true;
    wake.cancel();
  }
};

// One connection attempt (a named coroutine: see spawn.h on lambda coroutines).
awaitable<void> attempt(std::shared_ptr<Race> race, size_t index, tcp::endpoint endpoint) {
  boost::system::error_code ec;
  // Closed before this attempt began (the dial was cancelled meanwhile): asio's connect
  // would open it again, unmarked, and connect to the origin.
  if (!race->sockets[index]->is_open()) {
    ec = asio::error::operation_aborted;
  } else {
    co_await race->sockets[index]->async_connect(endpoint, asio::redirect_error(use_awaitable, ec));
  }
  race->finished[index] = true;
  if (!ec && race->winner < 0) {
    race->winner = static_cast<int>(index);
  } else {
    if (ec) {
      ++race->failed;
      if (ec != asio::error::operation_aborted) race->lastError = ec.message();
    }
    boost::system::error_code ignored;
    race->sockets[index]->close(ignored);
  }
  race->notify();
}

// One address: nothing to race. A plain connect under the deadline costs the event loop
// two turns fewer than the race (its spawned attempt, and the timer that attempt cancels
// to wake the dialer).
awaitable<DialResult> dialOnly(DialResult out, const DialRules& rules, const IpAddress& target, uint16_t port) {
  const tcp::endpoint endpoint(toAsio(target), port);
  out.upstream = upstreamText(target, port);
  tcp::socket& socket = out.socket;
  if (auto ec = openMarkedSocket(socket, endpoint.protocol(), rules.socketMark)) {
    out.failure = "upstream-connect:" + ec.message();
    co_return out;
  }
  boost::system::error_code ec;
  bool expired = false;
  {
    auto closeSocket = [&socket] {
      boost::system::error_code ignored;
      socket.close(ignored);
    };
    Deadline deadline(socket.get_executor(), rules.connectTimeout, closeSocket);
    DialCancelHook onCancel(rules.cancel, closeSocket);
    co_await socket.async_connect(endpoint, asio::redirect_error(use_awaitable, ec));
    expired = deadline.expired();
  }
  if (cancelled(rules) || expired || ec) {
    out.failure = cancelled(rules) ? rules.cancel->reason()
                  : expired        ? "upstream-connect-timeout"
                                   : "upstream-connect:" + ec.message();
    boost::system::error_code ignored;
    socket.close(ignored);
  }
  co_return out;
}

}  // namespace

std::vector<IpAddress> interleaveFamilies(const std::vector<IpAddress>& addresses) {
  std::vector<IpAddress> v6, v4, out;
  for (const auto& a : addresses) (a.isV6 ? v6 : v4).push_back(a);
  for (size_t i = 0; i < std::max(v6.size(), v4.size()); ++i) {
    if (i < v6.size()) out.push_back(v6[i]);
    if (i < v4.size()) out.push_back(v4[i]);
  }
  return out;
}

void UpstreamDialer::useDns(const DnsResolverOptions& options) {
  if (resolver_) {
    const auto& now = resolver_->options();
    if (now.server == options.server && now.timeout == options.timeout && now.cache == options.cache &&
        now.maxInFlight == options.maxInFlight) {
      return;  // the same DNS: keep the cache warm across a reload
    }
  }
  resolver_ = std::make_shared<DnsResolver>(io_, options);
}

// Per reason, over every worker's dialer: the log's running total is the daemon's.
static uint64_t countRefusal(const std::string& reason) {
  static std::mutex mutex;
  static std::map<std::string, uint64_t> totals;
  std::lock_guard lock(mutex);
  return ++totals[reason];
}

void UpstreamDialer::logRefused(const std::string& host, const GuardedAddresses::Refused& refused,
                                const std::string& flowText) {
  const char* reason = toString(refused.reason);
  uint64_t total = countRefusal(reason);
  spdlog::warn("dns-refused host={} address={} reason={} {} refused_total={}", host, formatIp(refused.address), reason,
               flowText, total);
}

awaitable<DialResult> UpstreamDialer::dial(const DialRules& rules, const UpstreamDestination& destination,
                                           std::string flowText) {
  auto executor = co_await asio::this_coro::executor;
  DialResult out{tcp::socket(executor)};

  if (cancelled(rules)) {  // the stream was gone before the dial began
    out.failure = rules.cancel->reason();
    co_return out;
  }
  // Where: STATIC addresses as written, else the DNS answers the guard allows.
  std::vector<IpAddress> targets;
  if (!destination.addressesBe.empty()) {
    for (uint32_t address : destination.addressesBe) targets.push_back(IpAddress::fromV4(address));
  } else {
    std::shared_ptr<DnsResolver> resolver = resolver_;  // a reload may replace it meanwhile
    const auto asked = std::chrono::steady_clock::now();
    ResolveResult resolved = co_await resolver->resolve(destination.host, rules.cancel);
    if (cancelled(rules)) {
      out.failure = rules.cancel->reason();
      co_return out;
    }
    if (resolved.cached) {
      out.dnsCacheHit = true;
    } else {
      out.dnsTime = std::chrono::steady_clock::now() - asked;
    }
    if (resolved.addresses.empty()) {
      out.failure = "dns-failed:" + destination.host + ":" + resolved.error;
      co_return out;
    }
    GuardedAddresses guarded = rules.guard.filter(resolved.addresses);
    for (const auto& refused : guarded.refused) {
      logRefused(destination.host, refused, flowText);
      out.refusedReasons.push_back(toString(refused.reason));
    }
    if (guarded.allowed.empty()) {
      out.failure = std::string("dns-refused:") + toString(guarded.refused.front().reason);
      co_return out;
    }
    targets = std::move(guarded.allowed);
  }
  if (cancelled(rules)) {
    out.failure = rules.cancel->reason();
    co_return out;
  }
  if (targets.size() == 1) co_return co_await dialOnly(std::move(out), rules, targets.front(), destination.port);
  targets = interleaveFamilies(targets);
  const auto deadlineAt = std::chrono::steady_clock::now() + rules.connectTimeout;

  // How: Happy Eyeballs. A new attempt starts when the previous one failed or after the
  // attempt delay, whichever is first; the first connected socket wins.
  auto race = std::make_shared<Race>(executor);
  race->finished.assign(targets.size(), false);
  size_t started = 0;
  size_t failedBefore = 0;  // failures seen when the last attempt started
  bool timedOut = false;
  {
    DialCancelHook onCancel(rules.cancel, [race] {
      for (auto& socket : race->sockets) {
        boost::system::error_code ignored;
        socket->close(ignored);
      }
      race->notify();
    });
    while (race->winner < 0) {
      if (cancelled(rules)) break;
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadlineAt) {
        timedOut = true;
        break;
      }
      const bool delayPassed = !race->changed;
      if (started < targets.size() && (started == 0 || race->failed > failedBefore || delayPassed)) {
        // start the next attempt (on the first pass, after a failure, or when the delay passed)
        const tcp::endpoint endpoint(toAsio(targets[started]), destination.port);
        out.upstream = upstreamText(targets[started], destination.port);
        race->sockets.push_back(std::make_unique<tcp::socket>(executor));
        // Marked, so that a redirect enrolled on the egress node's own cgroups (whose agent
        // trusts this namespace) cannot send the gateway's dial back into sluice.
        if (auto ec = openMarkedSocket(*race->sockets.back(), endpoint.protocol(), rules.socketMark)) {
          race->lastError = ec.message();
          race->finished[started] = true;
          ++race->failed;
          ++started;
          continue;
        }
        asio::co_spawn(executor, attempt(race, started, endpoint), asio::detached);
        ++started;
        failedBefore = race->failed;
      } else if (started == targets.size() && race->failed == started) {
        break;  // every address failed
      }
      // Wait for an attempt to end, the attempt delay (if more addresses wait) or the deadline.
      race->changed = false;
      auto wait = deadlineAt - now;
      if (started < targets.size()) wait = std::min<std::chrono::steady_clock::duration>(wait, kAttemptDelay);
      race->wake.expires_after(wait);
      boost::system::error_code ec;
      co_await race->wake.async_wait(asio::redirect_error(use_awaitable, ec));
      // changed == true: an attempt ended (loop re-checks); false: the delay or deadline passed.
    }
  }
  if (cancelled(rules)) race->winner = -1;  // its socket was closed by the cancel
  // The losers (and everything, on failure) are closed; their coroutines end aborted.
  for (size_t i = 0; i < race->sockets.size(); ++i) {
    if (static_cast<int>(i) == race->winner) continue;
    boost::system::error_code ignored;
    race->sockets[i]->close(ignored);
  }
  if (race->winner >= 0) {
    out.socket = std::move(*race->sockets[race->winner]);
    out.upstream = upstreamText(targets[race->winner], destination.port);
    co_return out;
  }
  if (cancelled(rules)) {
    out.failure = rules.cancel->reason();
  } else if (timedOut) {
    out.failure = "upstream-connect-timeout";
  } else {
    out.failure = race->lastError.empty() ? "upstream-connect-failed" : "upstream-connect:" + race->lastError;
  }
  co_return out;
}

}  // namespace sluice
