// The agent's data path: every connection the BPF redirect sends here is inspected
// (ClientHello SNI), decided (allowlist) and, if allowed, carried unchanged inside mTLS
// to the egress gateway.
#pragma once

#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "active_flows.h"
#include "address_guard.h"
#include "async.h"
#include "bpf_datapath.h"
#include "byte_stream.h"
#include "certificate_reloader.h"
#include "config.h"
#include "connection_limits.h"
#include "flow_report.h"
#include "host_matcher.h"
#include "pod_identity.h"
#include "tls_context.h"
#include "tunnel_pool.h"

namespace sluice {

class GatewayHealth;

// Immutable once built; a reload builds a new one and swaps the pointer, so each
// connection decides with the rules it started with.
struct AgentRules {
  AgentConfig agent;
  HostMatcher hosts;
  OutboundPolicy outbound = OutboundPolicy::RegistryOnly;
  AddressGuard directGuard;  // ALLOW_ANY: where a pass-through may not go (this node, metadata, ...)
  uint64_t version = 0;
};

class Forwarder {
 public:
  // `certificates`: the agent's mesh identity, rotated apart from the rules.
  Forwarder(asio::io_context& io, const BpfDatapath& datapath, std::shared_ptr<const AgentRules> rules,
            const CertificateReloader& certificates);
  // Binds and listens on the rules' listen address. Throws with the reason.
  void listen();
  // One loop per listener (IPv4, and IPv6 if configured).
  awaitable<void> acceptLoop(tcp::acceptor& acceptor);
  tcp::acceptor& acceptor4() { return acceptor_; }
  tcp::acceptor* acceptor6() { return acceptor6_.is_open() ? &acceptor6_ : nullptr; }
  void setRules(std::shared_ptr<const AgentRules> rules);
  // Caps on relayed connections (agent.maxConnections, agent.maxConnectionsPerPod),
  // shared by every worker of the daemon; without one a Forwarder makes its own.
  void shareLimits(std::shared_ptr<ConnectionLimits> limits) { limits_ = std::move(limits); }
  std::shared_ptr<ConnectionLimits> limits() const { return limits_; }
  void stop();
  // Drain: closes the listeners (the kernel refuses new connects) and opens no new
  // tunnel; flows in progress go on. On this forwarder's loop.
  void stopAccepting();
  // Where every flow, and every tunnel connection, registers while it runs (a drain
  // waits for them, resets the flows left at its deadline).
  void trackFlows(ActiveFlows* flows, ActiveFlows* tunnels) {
    flows_ = flows;
    pool_.trackConnections(tunnels);
  }
  // What the gateways given as names resolve to now (from the agent's GatewayNames, once
  // the kernel's bypass holds them). On this forwarder's loop.
  void setResolvedGateways(TunnelPool::ResolvedNames names) { pool_.setResolvedNames(std::move(names)); }
  // The drain's last flow has ended: the tunnels say GOAWAY and close.
  void closeTunnels() { pool_.closeConnections(); }
  // Tests of the loop guards only: the agent's sockets then carry no SO_MARK, leaving the
  // unenrolled agent cgroup as the one guard.
  void setSocketMark(bool on) {
    socketMark_ = on;
    configurePool();
  }
  // Where each flow's one report goes (access record, metrics) and who learns whether
  // the gateway answered. Call before the accept loops start.
  void setReporting(FlowReporter reporter, GatewayHealth* health) {
    reporter_ = reporter;
    health_ = health;
    pool_.setMetrics(reporter.metrics());
  }

 private:
  // What the inspection (steps 2 and 3) hands to the rest of the flow.
  struct Admission {
    enum class Next { Done, Tunnel, Direct } next = Next::Done;  // Done: denied and reported
    std::vector<uint8_t> hello;                                  // the bytes read, ClientHello first
    std::string authority;                                       // Tunnel: host:port
  };
  awaitable<void> handle(TcpStream app, tcp::endpoint peer);
  ConnectionLimits::Slot admitPeer(tcp::socket& client, FlowReport& flow, const tcp::endpoint& peer);
  // `active`: says whether a drain's deadline reset the app while it was read.
  awaitable<Admission> readHello(tcp::socket& client, const AgentRules& rules, FlowReport& flow,
                                 const ActiveFlows::Flow& active);
  void deny(tcp::socket& client, FlowReport& flow, std::string reason);
  // ALLOW_ANY: an unknown host goes to its original destination, not via the gateway.
  // `peeked`: the bytes read so far (the ClientHello), freed once sent.
  awaitable<void> passDirect(TcpStream& app, std::vector<uint8_t>& peeked, const AgentRules& rules, FlowReport& flow,
                             ActiveFlows::Flow& active);

  // Step 4: a CONNECT stream to a gateway, retried on another one while no byte has
  // come back from the origin. Null with `failure` set when every try failed, or when
  // the drain's deadline reset the flow meanwhile (`active`; failure "drain-deadline").
  awaitable<std::shared_ptr<TunnelStream>> openTunnel(tcp::socket& app, const AgentRules& rules,
                                                      const std::string& authority, const std::string& connectionId,
                                                      std::span<const uint8_t> firstBytes, std::string& gateway,
                                                      std::string& failure, int& retries, ActiveFlows::Flow& active);
  awaitable<std::shared_ptr<TunnelStream>> tryGateways(const AgentRules& rules, const std::string& authority,
                                                       const std::string& connectionId,
                                                       std::span<const uint8_t> firstBytes, std::string& gateway,
                                                       std::string& failure, int& retries,
                                                       std::shared_ptr<TunnelStream>& watched, bool& appReady,
                                                       const ActiveFlows::Flow& active);
  void configurePool();

  asio::io_context& io_;
  const BpfDatapath& datapath_;
  std::shared_ptr<const AgentRules> rules_;
  const CertificateReloader& certificates_;
  tcp::acceptor acceptor_;
  tcp::acceptor acceptor6_;
  bool socketMark_ = true;
  PodDirectory pods_;
  TunnelPool pool_;
  std::shared_ptr<ConnectionLimits> limits_;
  FlowReporter reporter_{nullptr};
  GatewayHealth* health_ = nullptr;
  ActiveFlows* flows_ = nullptr;
};

}  // namespace sluice
