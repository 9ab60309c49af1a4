// The agent's end of the tunnel: a few long-lived mTLS + HTTP/2 connections to each
// gateway, on which every app connection becomes one CONNECT stream. Gateways are
// addresses or names (each address a name resolves to is one gateway; the agent's one
// resolver hands the answers to every pool, see setResolvedNames); streams go to
// healthy ones in turn; a connection that fails is re-made with exponential backoff and
// jitter. One pool per Forwarder (per event loop): nothing here is shared across threads.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "active_flows.h"
#include "async.h"
#include "config.h"
#include "h2_tunnel.h"
#include "tunnel_pool_metrics.h"

namespace sluice {

struct TunnelPoolSettings {
  std::vector<GatewayTarget> gateways;
  std::string identity;    // the gateway's SPIFFE ID
  std::string serverName;  // SNI of the tunnel (the gateway service's name)
  uint32_t socketMark = 0;
  size_t connectionsPerGateway = 2;
  std::chrono::milliseconds connectTimeout{5000};
  std::chrono::milliseconds backoffMin{100};
  std::chrono::milliseconds backoffMax{10000};
  H2Settings h2;
  bool operator==(const TunnelPoolSettings&) const = default;
};

class TunnelPool {
 public:
  // `context`: the client TLS context for a new connection (it changes on rotation;
  // connections made with an older one drain).
  TunnelPool(asio::io_context& io, std::function<std::shared_ptr<SSL_CTX>()> context);
  ~TunnelPool();
  // Takes new settings; connections to gateways no longer listed, or made with other
  // settings, drain. The first call starts the pool.
  void configure(const TunnelPoolSettings& settings);
  // What the gateways given as names resolve to (name -> its addresses, the last good
  // answer): the pool dials these and nothing else for a name, so it never dials an
  // address the kernel's bypass does not hold yet.
  using ResolvedNames = std::map<std::string, std::vector<asio::ip::address>>;
  void setResolvedNames(ResolvedNames names);
  void stop();
  // Drain of the agent: no new connection is made; those up keep carrying streams.
  void drain() { draining_ = true; }
  // The drain's last flow has ended: every connection says GOAWAY and closes once its
  // streams (none by now) have ended.
  void closeConnections();
  // Where each connection registers while it runs (a drain waits for them to close).
  void trackConnections(ActiveFlows* connections) { tracked_ = connections; }
  // Where the pool reports its connections and handshake times (none: not reported).
  void setMetrics(TunnelPoolMetrics* metrics) { metrics_ = metrics; }

  struct Opened {
    std::shared_ptr<TunnelStream> stream;
    std::string gateway;  // "198.18.3.2:15443", for logs and to try another next time
    std::string failure;  // when no stream: why
  };
  // A CONNECT stream on a healthy gateway not in `exclude` (when there is one), waiting
  // up to the connect timeout for a connection if none is up, or until `giveUp` (asked
  // between waits; optional) says true: failure "given-up".
  awaitable<Opened> open(const std::string& authority, const std::string& connectionId,
                         const std::set<std::string>& exclude, const std::function<bool()>& giveUp = {});
  // Gateways (resolved addresses) with at least one usable connection, leaving out
  // those in `exclude` (labels, as Opened::gateway).
  size_t healthyGateways(const std::set<std::string>& exclude = {}) const;

 private:
  struct Gateway {
    tcp::endpoint endpoint;
    std::string label;
    std::vector<std::shared_ptr<H2Connection>> connections;
    size_t connecting = 0;
    unsigned failures = 0;
    std::chrono::steady_clock::time_point retryAt{};
    std::string lastError = "not-connected";
    bool listed = true;
  };
  awaitable<void> maintain();
  awaitable<void> connect(std::shared_ptr<Gateway> gateway, uint64_t generation);
  awaitable<void> runConnection(std::shared_ptr<H2Connection> connection);
  void applyEndpoints();
  void tick();
  std::shared_ptr<H2Connection> usable(Gateway& gateway) const;

  // Reports this pool's counts per gateway and state as changes since the last report.
  void reportCounts();

  asio::io_context& io_;
  std::function<std::shared_ptr<SSL_CTX>()> context_;
  TunnelPoolMetrics* metrics_ = nullptr;
  std::map<std::pair<std::string, TunnelState>, int64_t> reported_;
  TunnelPoolSettings settings_;
  uint64_t generation_ = 0;  // bumped by configure: connections of older generations drain
  bool started_ = false;
  bool stopped_ = false;
  bool draining_ = false;
  ActiveFlows* tracked_ = nullptr;
  std::vector<std::shared_ptr<Gateway>> gateways_;
  size_t next_ = 0;  // round robin over gateways
  asio::steady_timer tickTimer_;
  ResolvedNames resolvedNames_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::mt19937 random_{std::random_device{}()};
  // The context and generation each connection was made with (the context kept alive).
  std::map<H2Connection*, std::pair<std::shared_ptr<SSL_CTX>, uint64_t>> madeWith_;
};

}  // namespace sluice
