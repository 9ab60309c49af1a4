// The egress gateway: terminates the agents' mTLS, authorizes identity x host x port,
// resolves the host, connects and relays. It never sees the app's plaintext.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "access_report.h"
#include "address_guard.h"
#include "async.h"
#include "certificate_reloader.h"
#include "config.h"
#include "dns_cache.h"
#include "dns_resolver.h"
#include "host_matcher.h"
#include "tls_context.h"

namespace sluice {

struct GatewayRules {
  GatewayConfig gateway;
  HostMatcher hosts;
  Config config;  // for routes (Config::routeFor)
  std::unique_ptr<DnsResolver> resolver;
  // Per rule set: a reload (maybe a new DNS server) starts with an empty cache.
  std::unique_ptr<DnsCache> dnsCache;
  // Judges every DNS answer before it is dialed; knows this gateway's own addresses as
  // they were when the rules were (re)loaded.
  AddressGuard guard;
  uint64_t version = 0;
};

// Where one connection goes: the addresses to dial in turn, or why it goes nowhere.
struct UpstreamTargets {
  std::vector<IpAddress> addresses;
  std::string failure;  // a gateway result (dns-failed:..., dns-refused:<reason>)
  std::optional<std::chrono::steady_clock::duration> dnsTime;  // a lookup not answered from the cache
};

class GatewayServer {
 public:
  // `certificates`: the gateway's mesh identity, rotated apart from the rules.
  GatewayServer(asio::io_context& io, asio::thread_pool& resolverPool, std::shared_ptr<const GatewayRules> rules,
                const CertificateReloader& certificates);
  void listen();
  awaitable<void> acceptLoop();
  void setRules(std::shared_ptr<const GatewayRules> rules) { rules_ = std::move(rules); }
  void stop();
  // Where each connection's one report goes (access record, metrics). Before listen().
  void setReporting(AccessReporter reporter) { reporter_ = reporter; }

  // Installs the ALPN selection on a server context: accept "sluice/port=N" only.
  static void configureAlpn(SSL_CTX* ctx);

 private:
  awaitable<void> handle(tcp::socket agent);
  // STATIC addresses as the rules wrote them, or the DNS answers the address guard allows.
  awaitable<UpstreamTargets> upstreamTargets(const GatewayRules& rules, const UpstreamDestination& destination,
                                             std::string flowText);
  // Each refused answer: logged with the name and the address, and counted per reason.
  void logRefused(const std::string& host, const GuardedAddresses::Refused& refused, const std::string& flowText);

  std::map<std::string, uint64_t> refusedTotal_;  // per reason; touched on the I/O thread only

  asio::io_context& io_;
  asio::thread_pool& resolverPool_;
  std::shared_ptr<const GatewayRules> rules_;
  const CertificateReloader& certificates_;
  tcp::acceptor acceptor_;
  AccessReporter reporter_{nullptr};
};

}  // namespace sluice
