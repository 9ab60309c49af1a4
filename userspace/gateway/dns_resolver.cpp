#include "dns_resolver.h"

#include <netdb.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <mutex>
#include <stdexcept>

namespace sluice {

// One name being asked: each waiter waits on a signal of its own (so that one can stop
// waiting alone), the answer or the deadline wakes them all at once.
struct DnsResolver::Flight {
  explicit Flight(asio::any_io_executor executor) : deadline(executor) {}
  std::string host;
  std::vector<std::weak_ptr<Signal>> waiters;
  asio::steady_timer deadline;
  ResolveResult result;
  bool finished = false;
  void wakeAll() {
    for (auto& waiter : waiters) {
      if (auto signal = waiter.lock()) signal->set();
    }
    waiters.clear();
  }
};

// One socket of c-ares, watched by the event loop. The descriptor is c-ares' own: it is
// released (never closed) when c-ares says the socket is gone.
struct DnsResolver::Watch {
  Watch(asio::io_context& io, ares_socket_t fd) : descriptor(io, fd), fd(fd) {}
  asio::posix::stream_descriptor descriptor;
  ares_socket_t fd;
  bool wantRead = false;
  bool wantWrite = false;
  bool readPending = false;
  bool writePending = false;
  bool gone = false;
};

struct DnsResolver::QueryArg {
  DnsResolver* self;
  std::shared_ptr<Flight> flight;
};

DnsResolver::DnsResolver(asio::io_context& io, DnsResolverOptions options)
    : io_(io), options_(options), timer_(io), cache_(options.cache) {
  static std::once_flag once;
  std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
  ares_options ao{};
  // c-ares doubles the per-try timeout on its retry: the retry goes out at half the
  // deadline, and the deadline (not c-ares) ends the lookup.
  ao.timeout = std::max<int>(100, static_cast<int>(options_.timeout.count() / 2));
  ao.tries = 2;
  ao.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
  char lookups[] = "b";  // DNS only: never /etc/hosts of the gateway machine
  ao.lookups = lookups;
  ao.sock_state_cb = &DnsResolver::onSocketState;
  ao.sock_state_cb_data = this;
  int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS | ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB;
  if (int status = ares_init_options(&channel_, &ao, mask); status != ARES_SUCCESS) {
    throw std::runtime_error(std::string("c-ares init: ") + ares_strerror(status));
  }
  std::string server = formatEndpoint(options_.server);
  if (int status = ares_set_servers_ports_csv(channel_, server.c_str()); status != ARES_SUCCESS) {
    ares_destroy(channel_);
    throw std::runtime_error("c-ares server " + server + ": " + ares_strerror(status));
  }
}

DnsResolver::~DnsResolver() {
  destroying_ = true;
  ares_destroy(channel_);  // pending callbacks run with ARES_EDESTRUCTION (ignored below)
  for (auto& [fd, watch] : watches_) {
    watch->gone = true;
    boost::system::error_code ignored;
    watch->descriptor.cancel(ignored);
    watch->descriptor.release();
  }
  watches_.clear();
  timer_.cancel();
  for (auto& [host, flight] : flights_) {
    if (flight->finished) continue;
    flight->finished = true;
    flight->result.error = "resolver stopped";
    flight->deadline.cancel();
    flight->wakeAll();
  }
  flights_.clear();
}

void DnsResolver::onSocketState(void* data, ares_socket_t socket, int readable, int writable) {
  static_cast<DnsResolver*>(data)->socketState(socket, readable != 0, writable != 0);
}

void DnsResolver::socketState(ares_socket_t socket, bool readable, bool writable) {
  if (destroying_) return;
  auto it = watches_.find(socket);
  if (!readable && !writable) {
    // c-ares closes the socket right after this: stop watching it first.
    if (it == watches_.end()) return;
    auto watch = it->second;
    watches_.erase(it);
    watch->gone = true;
    boost::system::error_code ignored;
    watch->descriptor.cancel(ignored);
    watch->descriptor.release();
    return;
  }
  if (it == watches_.end()) it = watches_.emplace(socket, std::make_shared<Watch>(io_, socket)).first;
  it->second->wantRead = readable;
  it->second->wantWrite = writable;
  arm(it->second);
}

void DnsResolver::arm(const std::shared_ptr<Watch>& watch) {
  if (watch->gone) return;
  if (watch->wantRead && !watch->readPending) {
    watch->readPending = true;
    watch->descriptor.async_wait(asio::posix::descriptor_base::wait_read,
                                 [this, watch](const boost::system::error_code& ec) {
                                   watch->readPending = false;
                                   if (ec || watch->gone) return;
                                   process(watch->fd, ARES_SOCKET_BAD);
                                   arm(watch);
                                 });
  }
  if (watch->wantWrite && !watch->writePending) {
    watch->writePending = true;
    watch->descriptor.async_wait(asio::posix::descriptor_base::wait_write,
                                 [this, watch](const boost::system::error_code& ec) {
                                   watch->writePending = false;
                                   if (ec || watch->gone) return;
                                   process(ARES_SOCKET_BAD, watch->fd);
                                   arm(watch);
                                 });
  }
}

void DnsResolver::process(ares_socket_t readable, ares_socket_t writable) {
  ares_process_fd(channel_, readable, writable);
  rearmTimer();
}

// c-ares' retries and per-try timeouts: one timer, set to when c-ares next wants to look.
void DnsResolver::rearmTimer() {
  if (destroying_) return;
  timeval maxWait{1, 0};
  timeval wait{};
  timeval* next = ares_timeout(channel_, &maxWait, &wait);
  bool pending = false;
  for (const auto& [host, flight] : flights_) pending = pending || !flight->finished;
  if (!pending && watches_.empty()) {
    if (timerArmed_) timer_.cancel();
    return;
  }
  timer_.expires_after(std::chrono::seconds(next->tv_sec) + std::chrono::microseconds(next->tv_usec));
  timerArmed_ = true;
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // re-set or cancelled
    timerArmed_ = false;
    process(ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  });
}

void DnsResolver::onAddrInfo(void* arg, int status, int, struct ares_addrinfo* info) {
  std::unique_ptr<QueryArg> query(static_cast<QueryArg*>(arg));
  if (status == ARES_EDESTRUCTION || query->self->destroying_) {
    if (info) ares_freeaddrinfo(info);
    return;
  }
  ResolveResult result;
  auto ttl = std::numeric_limits<int>::max();
  if (status != ARES_SUCCESS) {
    result.error = ares_strerror(status);
  } else {
    // The nodes are the final addresses of the name after c-ares followed any CNAMEs:
    // exactly what the gateway would dial, so what its address guard checks.
    for (auto* node = info ? info->nodes : nullptr; node; node = node->ai_next) {
      if (node->ai_family == AF_INET) {
        uint32_t address;
        std::memcpy(&address, &reinterpret_cast<sockaddr_in*>(node->ai_addr)->sin_addr, sizeof(address));
        result.addresses.push_back(IpAddress::fromV4(address));
      } else if (node->ai_family == AF_INET6) {
        Ipv6Address address;
        std::memcpy(address.data(), &reinterpret_cast<sockaddr_in6*>(node->ai_addr)->sin6_addr, address.size());
        result.addresses.push_back(IpAddress::fromV6(address));
      } else {
        continue;
      }
      ttl = std::min(ttl, node->ai_ttl);
    }
    for (auto* cname = info ? info->cnames : nullptr; cname; cname = cname->next) ttl = std::min(ttl, cname->ttl);
    if (result.addresses.empty()) result.error = "no address";
  }
  if (info) ares_freeaddrinfo(info);
  DnsResolver& self = *query->self;
  // Cached even when the deadline already failed the waiters: the next lookup gains.
  if (!result.addresses.empty()) {
    self.cache_.putAnswer(query->flight->host, result.addresses, std::chrono::seconds(std::max(ttl, 0)));
  } else {
    self.cache_.putFailure(query->flight->host, result.error);
  }
  self.finish(query->flight, std::move(result));
}

void DnsResolver::finish(const std::shared_ptr<Flight>& flight, ResolveResult result) {
  if (auto it = flights_.find(flight->host); it != flights_.end() && it->second == flight) flights_.erase(it);
  if (flight->finished) return;
  flight->finished = true;
  flight->result = std::move(result);
  flight->deadline.cancel();
  flight->wakeAll();
}

awaitable<ResolveResult> DnsResolver::resolve(std::string host, DialCancel* cancel) {
  if (auto hit = cache_.find(host)) {
    co_return ResolveResult{std::move(hit->addresses), std::move(hit->error), true};
  }
  std::shared_ptr<Flight> flight;
  if (auto it = flights_.find(host); it != flights_.end()) {
    flight = it->second;  // single flight: wait for the query already asked
  } else if (flights_.size() >= options_.maxInFlight) {
    co_return ResolveResult{{}, "too many lookups in flight (" + std::to_string(flights_.size()) + ")", false};
  } else {
    flight = std::make_shared<Flight>(io_.get_executor());
    flight->host = host;
    flights_.emplace(host, flight);
    flight->deadline.expires_after(options_.timeout);
    flight->deadline.async_wait([this, flight](const boost::system::error_code& ec) {
      if (ec || flight->finished) return;
      ResolveResult timedOut;
      timedOut.error = "timed out after " + std::to_string(options_.timeout.count()) + " ms";
      cache_.putFailure(flight->host, timedOut.error);
      finish(flight, std::move(timedOut));
    });
    ares_addrinfo_hints hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    ++queriesSent_;
    ares_getaddrinfo(channel_, host.c_str(), nullptr, &hints, &DnsResolver::onAddrInfo, new QueryArg{this, flight});
    rearmTimer();
  }
  if (isCancelled(cancel)) co_return ResolveResult{{}, "cancelled", false};
  if (!flight->finished) {  // c-ares may have answered at once (from its own checks)
    auto woken = std::make_shared<Signal>(io_.get_executor());
    flight->waiters.push_back(woken);
    DialCancelHook onCancel(cancel, [woken] { woken->set(); });
    co_await woken->wait();
  }
  if (!flight->finished) co_return ResolveResult{{}, "cancelled", false};
  co_return flight->result;
}

}  // namespace sluice
