// The egress gateway: terminates the agents' mTLS, authorizes identity x host x port,
// resolves the host, connects and relays. It never sees the app's plaintext.
#pragma once

#include <memory>

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
  uint64_t version = 0;
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

  // Installs the ALPN selection on a server context: accept "sluice/port=N" only.
  static void configureAlpn(SSL_CTX* ctx);

 private:
  awaitable<void> handle(tcp::socket agent);

  asio::io_context& io_;
  asio::thread_pool& resolverPool_;
  std::shared_ptr<const GatewayRules> rules_;
  const CertificateReloader& certificates_;
  tcp::acceptor acceptor_;
};

}  // namespace sluice
