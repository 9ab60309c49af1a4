// Resolves external host names with the DNS server named in the rules (c-ares), not
// the node's resolv.conf, so the gateway's view of a name is what the rules say.
//
// Never blocks: c-ares runs on the owner's Asio event loop (its sockets are watched
// through the socket-state callback, its retries through one timer). Every lookup has
// a deadline; concurrent lookups of one name share one query (single flight); answers
// are cached as long as their TTL allows and failures for a short time (DnsCache). A
// slow or silent server for some names delays only the lookups of those names.
//
// One resolver per event loop (per GatewayServer): not thread-safe, call it from the
// loop's thread only.
#pragma once

#include <ares.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "async.h"
#include "dial_cancel.h"
#include "dns_cache.h"
#include "net_address.h"

namespace sluice {

struct ResolveResult {
  std::vector<IpAddress> addresses;  // every A and AAAA answer, CNAMEs followed
  std::string error;                 // set when addresses is empty
  bool cached = false;               // answered from the cache (positive or negative)
};

struct DnsResolverOptions {
  Ipv4Endpoint server;
  std::chrono::milliseconds timeout{3000};  // deadline of one lookup
  DnsCacheLimits cache;
  size_t maxInFlight = 4096;  // distinct names being asked at once; more fail at once
};

class DnsResolver {
 public:
  // Throws std::runtime_error if c-ares cannot be set up.
  DnsResolver(asio::io_context& io, DnsResolverOptions options);
  ~DnsResolver();
  DnsResolver(const DnsResolver&) = delete;
  DnsResolver& operator=(const DnsResolver&) = delete;

  // A and AAAA of `host` within the deadline. The resolver must outlive the call. A
  // cancel (optional) ends this caller's wait at once, with the error "cancelled"; the
  // lookup goes on for the others waiting for it, and for the cache.
  awaitable<ResolveResult> resolve(std::string host, DialCancel* cancel = nullptr);

  const DnsResolverOptions& options() const { return options_; }
  size_t inFlight() const { return flights_.size(); }
  size_t queriesSent() const { return queriesSent_; }
  const DnsCache& cache() const { return cache_; }

 private:
  struct Flight;
  struct Watch;
  struct QueryArg;

  static void onSocketState(void* data, ares_socket_t socket, int readable, int writable);
  static void onAddrInfo(void* arg, int status, int timeouts, struct ares_addrinfo* info);
  void socketState(ares_socket_t socket, bool readable, bool writable);
  void arm(const std::shared_ptr<Watch>& watch);
  void process(ares_socket_t readable, ares_socket_t writable);
  void rearmTimer();
  void finish(const std::shared_ptr<Flight>& flight, ResolveResult result);

  asio::io_context& io_;
  DnsResolverOptions options_;
  ares_channel channel_ = nullptr;
  asio::steady_timer timer_;
  bool timerArmed_ = false;
  std::unordered_map<ares_socket_t, std::shared_ptr<Watch>> watches_;
  std::unordered_map<std::string, std::shared_ptr<Flight>> flights_;
  DnsCache cache_;
  size_t queriesSent_ = 0;
  bool destroying_ = false;
};

}  // namespace sluice
