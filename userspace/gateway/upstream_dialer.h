// The gateway's dial to an origin: where (the route's STATIC addresses as written, or the
// DNS answers the address guard allows) and how (Happy Eyeballs, RFC 8305: addresses
// interleaved by family starting with IPv6, a new attempt every 250 ms while earlier ones
// are still pending, the first to connect wins, one deadline over everything).
//
// One dialer per event loop (per GatewayServer), like its resolver; the gateway calls
// dial() once per connection (or per tunnel stream).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "address_guard.h"
#include "async.h"
#include "config.h"
#include "dial_cancel.h"
#include "dns_resolver.h"

namespace sluice {

// What dial() needs from the rules in force.
struct DialRules {
  const AddressGuard& guard;
  uint32_t socketMark = 0;
  std::chrono::milliseconds connectTimeout{5000};  // every attempt, after DNS (which has its own)
  DialCancel* cancel = nullptr;                    // optional; must outlive the dial (failure: its reason)
};

struct DialResult {
  tcp::socket socket;          // connected when `failure` is empty
  std::string upstream = "-";  // the chosen (or last tried) "198.18.100.10:443", "[2001:db8::10]:443"
  std::string failure;         // a gateway result: dns-failed:..., dns-refused:<reason>, upstream-connect...
  // For the metrics: how the name was answered, and each answer the guard refused.
  std::optional<std::chrono::steady_clock::duration> dnsTime;  // a lookup not answered from the cache
  bool dnsCacheHit = false;
  std::vector<const char*> refusedReasons;
};

// Addresses in the order RFC 8305 section 4 tries them: families interleaved, IPv6 first.
std::vector<IpAddress> interleaveFamilies(const std::vector<IpAddress>& addresses);

class UpstreamDialer {
 public:
  static constexpr std::chrono::milliseconds kAttemptDelay{250};  // RFC 8305 "Connection Attempt Delay"

  explicit UpstreamDialer(asio::io_context& io) : io_(io) {}

  // The DNS server and cache the rules ask for: a change starts a new resolver (and an
  // empty cache); lookups in flight finish on the old one. Call before the first dial.
  void useDns(const DnsResolverOptions& options);

  // `flowText` ("peer=... identity=... sni=...") goes into the log line of a refused answer.
  awaitable<DialResult> dial(const DialRules& rules, const UpstreamDestination& destination, std::string flowText);

  DnsResolver& resolver() { return *resolver_; }

 private:
  // Each refused answer: logged with the name and the address, and counted per reason.
  void logRefused(const std::string& host, const GuardedAddresses::Refused& refused, const std::string& flowText);

  asio::io_context& io_;
  std::shared_ptr<DnsResolver> resolver_;
};

}  // namespace sluice
