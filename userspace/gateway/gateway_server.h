// The egress gateway: terminates the agents' mTLS, authorizes identity x host x port,
// resolves the host, connects and relays. It never sees the app's plaintext.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "access_report.h"
#include "active_flows.h"
#include "address_guard.h"
#include "async.h"
#include "certificate_reloader.h"
#include "config.h"
#include "connection_limits.h"
#include "h2_tunnel.h"
#include "host_matcher.h"
#include "tls_context.h"
#include "upstream_dialer.h"

namespace sluice {

struct GatewayRules {
  GatewayConfig gateway;
  HostMatcher hosts;
  Config config;  // for routes (Config::routeFor)
  // Judges every DNS answer before it is dialed; knows this gateway's own addresses as
  // they were when the rules were (re)loaded.
  AddressGuard guard;
  uint64_t version = 0;
};

// The gateway's caps, shared by every worker (thread-safe): TLS handshakes in progress,
// in all and per peer address; relayed connections per client identity.
struct GatewayLimits {
  explicit GatewayLimits(const GatewayConfig& gateway)
      : handshakes(gateway.maxPendingHandshakes, gateway.maxPendingHandshakesPerAddress),
        clients(0, gateway.maxConnectionsPerClient) {}
  void update(const GatewayConfig& gateway) {
    handshakes.setCaps(gateway.maxPendingHandshakes, gateway.maxPendingHandshakesPerAddress);
    clients.setCaps(0, gateway.maxConnectionsPerClient);
  }
  ConnectionLimits handshakes;
  ConnectionLimits clients;
};

// The resolver settings of a rule set.
DnsResolverOptions dnsOptions(const GatewayConfig& gateway);

class GatewayServer {
 public:
  // `certificates`: the gateway's mesh identity, rotated apart from the rules.
  GatewayServer(asio::io_context& io, std::shared_ptr<const GatewayRules> rules,
                const CertificateReloader& certificates);
  void listen();
  awaitable<void> acceptLoop();
  // May be called from any thread: applied on this server's event loop.
  void setRules(std::shared_ptr<const GatewayRules> rules);
  // Workers of one daemon share one set of caps.
  void shareLimits(std::shared_ptr<GatewayLimits> limits) { limits_ = std::move(limits); }
  std::shared_ptr<GatewayLimits> limits() const { return limits_; }
  void stop();
  // Drain: closes the listeners and sends GOAWAY on every tunnel (agents open new
  // streams elsewhere; those in progress go on; each tunnel ends after its last stream).
  // May be called from any thread: applied on this server's event loop.
  void drain();
  // Where streams and tunnels register while they run (a drain waits for them and
  // resets the rest). Before listen().
  void trackFlows(ActiveFlows* streams, ActiveFlows* tunnels) {
    streams_ = streams;
    tunnels_ = tunnels;
  }
  // Where each connection's one report goes (access record, metrics). Before listen().
  void setReporting(AccessReporter reporter) { reporter_ = reporter; }

  // Installs the ALPN selection on a server context: "h2" (the tunnel) only.
  static void configureAlpn(SSL_CTX* ctx);

  // Who opened a tunnel, known once per mTLS connection.
  struct TunnelPeer {
    std::string address;
    std::string identity;
    std::string serial;
  };
  // One CONNECT stream: authorize the host, dial, answer, relay. Public for the fuzzer.
  awaitable<void> handleStream(std::shared_ptr<TunnelStream> stream, std::shared_ptr<const TunnelPeer> peer);
  // Serves HTTP/2 on an authenticated tunnel until it ends.
  awaitable<void> serveTunnel(std::unique_ptr<TlsStream> tls, std::shared_ptr<const TunnelPeer> peer);

 private:
  awaitable<void> acceptOn(tcp::acceptor& acceptor);
  awaitable<void> handle(tcp::socket agent);
  // Steps 3-4 of a stream: where to (route, STATIC or DNS through the address guard),
  // then connect, until `cancel` (the drain's deadline). `upstream` is the address
  // dialed last; `failure` empty on success.
  awaitable<std::string> dialUpstream(const GatewayRules& rules, const std::string& rule, const std::string& host,
                                      uint16_t port, const std::string& flowText, tcp::socket& upstream,
                                      AccessReport& record, DialCancel& cancel);

  asio::io_context& io_;
  std::shared_ptr<const GatewayRules> rules_;
  UpstreamDialer dialer_;  // this worker's resolver and dials
  std::shared_ptr<GatewayLimits> limits_;
  const CertificateReloader& certificates_;
  tcp::acceptor acceptor_;
  tcp::acceptor acceptor6_;
  AccessReporter reporter_{nullptr};
  ActiveFlows* streams_ = nullptr;
  ActiveFlows* tunnels_ = nullptr;
  std::set<std::shared_ptr<H2Connection>> liveTunnels_;  // this loop's, for GOAWAY on drain
  bool draining_ = false;
};

}  // namespace sluice
