#include "forwarder.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <optional>

#include "asio_address.h"
#include "byte_stream.h"
#include "client_hello.h"
#include "flow_report.h"
#include "gateway_health.h"
#include "marked_socket.h"
#include "relay.h"
#include "spawn.h"
#include "tunnel_protocol.h"

namespace sluice {
namespace {

void resetAndClose(tcp::socket& socket) {
  boost::system::error_code ignored;
  // Linger 0 turns close into a RST: the app sees its connection refused at once
  // instead of a clean EOF that could look like an empty response.
  socket.set_option(asio::socket_base::linger(true, 0), ignored);
  socket.close(ignored);
}

// "198.18.1.2:443", "[2001:db8::2]:443".
std::string formatEndpoint(const tcp::endpoint& endpoint) {
  const auto& a = endpoint.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(endpoint.port());
}

// The hand-off key for an accepted peer: the form sockops published it in.
sl_endpoint kernelKey(const tcp::endpoint& peer) {
  sl_endpoint key{};
  auto address = peer.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  }
  if (address.is_v4()) {
    uint32_t be = htonl(address.to_v4().to_uint());
    std::memcpy(key.addr, &be, 4);
    key.family = SL_FAMILY_INET;
  } else {
    auto bytes = address.to_v6().to_bytes();
    std::memcpy(key.addr, bytes.data(), 16);
    key.family = SL_FAMILY_INET6;
  }
  key.port_be = htons(peer.port());
  return key;
}

// The original destination as a connectable endpoint (v4-mapped becomes IPv4).
tcp::endpoint fromKernel(const sl_endpoint& e) {
  asio::ip::address_v6::bytes_type bytes{};
  std::memcpy(bytes.data(), e.addr, 16);
  if (e.family == SL_FAMILY_INET6) {
    asio::ip::address_v6 v6(bytes);
    if (v6.is_v4_mapped()) return {asio::ip::make_address_v4(asio::ip::v4_mapped, v6), ntohs(e.port_be)};
    return {v6, ntohs(e.port_be)};
  }
  uint32_t be;
  std::memcpy(&be, e.addr, 4);
  return {asio::ip::address_v4(ntohl(be)), ntohs(e.port_be)};
}

tcp::endpoint toAsio(const Ipv4Endpoint& endpoint) {
  return tcp::endpoint(asio::ip::address_v4(ntohl(endpoint.addressBe)), endpoint.port);
}

}  // namespace

Forwarder::Forwarder(asio::io_context& io, const BpfDatapath& datapath, std::shared_ptr<const AgentRules> rules,
                     const CertificateReloader& certificates)
    : io_(io),
      datapath_(datapath),
      rules_(std::move(rules)),
      certificates_(certificates),
      acceptor_(io),
      acceptor6_(io) {}

static void bindAndListen(tcp::acceptor& acceptor, const tcp::endpoint& endpoint) {
  acceptor.open(endpoint.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  if (endpoint.address().is_v6()) acceptor.set_option(asio::ip::v6_only(true));
  boost::system::error_code ec;
  acceptor.bind(endpoint, ec);
  if (ec) throw std::runtime_error("binding " + formatEndpoint(endpoint) + ": " + ec.message());
  acceptor.listen(asio::socket_base::max_listen_connections);
}

void Forwarder::listen() {
  bindAndListen(acceptor_, toAsio(rules_->agent.listen));
  if (rules_->agent.listen6) {
    bindAndListen(acceptor6_, tcp::endpoint(asio::ip::address_v6(*rules_->agent.listen6), rules_->agent.listen.port));
  }
}

void Forwarder::stop() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  acceptor6_.close(ignored);
}

awaitable<void> Forwarder::acceptLoop(tcp::acceptor& acceptor) {
  while (acceptor.is_open()) {
    boost::system::error_code ec;
    tcp::socket client = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted) break;
    if (ec) {
      // EMFILE and friends: log and keep serving; the kernel queue holds the client.
      spdlog::error("accept on {}: {}", formatEndpoint(acceptor.local_endpoint(ec)), ec.message());
      asio::steady_timer pause(io_, std::chrono::milliseconds(50));
      co_await pause.async_wait(use_awaitable);
      continue;
    }
    asio::co_spawn(io_, handle(std::move(client)), logEscapedException("agent connection"));
  }
}

awaitable<void> Forwarder::handle(tcp::socket client) {
  const std::shared_ptr<const AgentRules> rules = rules_;
  const AgentConfig& agent = rules->agent;
  auto executor = co_await asio::this_coro::executor;
  FlowReport flow;
  flow.connectionId = newConnectionId();
  reporter_.started();
  // Every way out of this function: reset the app (unless relayed cleanly), report once.
  auto deny = [&](std::string reason) {
    flow.decision = FlowDecision::Denied;
    flow.reason = std::move(reason);
    resetAndClose(client);
    reporter_.report(flow);
  };
  boost::system::error_code ec;
  const tcp::endpoint peer = client.remote_endpoint(ec);
  if (ec) {
    deny("client-read-error:" + ec.message());
    co_return;
  }
  flow.client = peer;
  client.set_option(tcp::no_delay(true), ec);

  // 1. Where did the app want to go? Published by sockops, keyed by the app's source.
  std::optional<sl_orig_dst> original = datapath_.takeOriginalDestination(kernelKey(peer));
  if (!original) {
    // Not redirected by us (someone dialled the agent directly), or the hand-off map
    // was full: there is nowhere safe to send it.
    deny("no-original-destination");
    co_return;
  }
  flow.destination = fromKernel(original->dst);
  flow.cgroupId = original->cgroup_id;
  flow.pod = pods_.podUid(flow.cgroupId).value_or("-");

  // 2. Read the ClientHello (possibly several segments and records) under a deadline.
  std::vector<uint8_t> peeked(agent.maxClientHelloBytes);
  size_t have = 0;
  HelloResult hello;
  {
    Deadline deadline(executor, agent.clientHelloTimeout, [&client] {
      boost::system::error_code ignored;
      client.cancel(ignored);
    });
    while (hello.status == HelloStatus::NeedMore) {
      size_t n = co_await client.async_read_some(asio::buffer(peeked.data() + have, peeked.size() - have),
                                                 asio::redirect_error(use_awaitable, ec));
      if (ec) {
        deny(deadline.expired()       ? "client-hello-timeout"
             : ec == asio::error::eof ? "client-closed-before-hello"
                                      : "client-read-error:" + ec.message());
        co_return;
      }
      have += n;
      hello = parseClientHello(std::span<const uint8_t>(peeked.data(), have), peeked.size());
    }
  }
  flow.clientHelloWait = FlowReport::Clock::now() - flow.started;
  if (hello.status != HelloStatus::Done) {
    deny(std::string(hello.status == HelloStatus::NotTls ? "not-tls" : "bad-client-hello") + ":" + hello.error);
    co_return;
  }
  // ECH: the name in the clear is only the outer, public one; the host the app reaches
  // is encrypted. Refused unless the rules say to decide by the outer name.
  if (hello.encryptedClientHello && agent.echPolicy == EchPolicy::Deny) {
    if (hello.serverName) flow.sni = *hello.serverName;
    deny("ech-refused");
    co_return;
  }
  if (!hello.serverName) {
    deny("no-sni");
    co_return;
  }
  flow.sni = *hello.serverName;

  // 3. Policy: deny by default.
  auto host = normalizeHostName(flow.sni);
  if (!host) {
    deny("invalid-sni");
    co_return;
  }
  auto rule = rules->hosts.match(*host, flow.destination.port());
  if (!rule) {
    if (rules->outbound == OutboundPolicy::AllowAny) {
      co_await passDirect(std::move(client), std::move(peeked), have, rules, std::move(flow));
      co_return;
    }
    deny("host-not-allowed");
    co_return;
  }
  flow.rule = *rule;
  flow.gateway = formatEndpoint(toAsio(agent.gatewayAddress));

  // 4. mTLS to the gateway: SNI = host, port as ALPN, gateway identity checked.
  flow.decision = FlowDecision::Failed;
  tcp::socket upstream(executor);
  ec = openMarkedSocket(upstream, tcp::v4(), socketMark_ ? agent.socketMark : 0);
  if (ec) {
    flow.reason = "local-socket-error:" + ec.message();
    resetAndClose(client);
    reporter_.report(flow);
    co_return;
  }
  std::string failure;
  bool reached = false;  // the gateway answered (for its health)
  std::optional<TlsStream> tunnel;
  {
    Deadline deadline(executor, agent.gatewayConnectTimeout, [&upstream, &tunnel] {
      boost::system::error_code ignored;
      if (tunnel) {
        tunnel->socket().cancel(ignored);
      } else {
        upstream.cancel(ignored);
      }
    });
    auto step = FlowReport::Clock::now();
    co_await upstream.async_connect(toAsio(agent.gatewayAddress), asio::redirect_error(use_awaitable, ec));
    if (ec) {
      failure = deadline.expired() ? "gateway-connect-timeout" : "gateway-connect:" + ec.message();
    } else {
      reached = true;
      flow.gatewayConnect = FlowReport::Clock::now() - step;
      step = FlowReport::Clock::now();
      upstream.set_option(tcp::no_delay(true), ec);
      tunnel.emplace(std::move(upstream), certificates_.context(), TlsRole::Client);
      SSL_set_tlsext_host_name(tunnel->ssl(), host->c_str());
      resumeSession(tunnel->ssl(), *host);
      std::string alpn = portAlpn(flow.destination.port());
      std::string wire = std::string(1, static_cast<char>(alpn.size())) + alpn;
      SSL_set_alpn_protos(tunnel->ssl(), reinterpret_cast<const unsigned char*>(wire.data()), wire.size());
      ec = co_await tunnel->handshake();
      if (ec) {
        failure = deadline.expired() ? "gateway-handshake-timeout" : "gateway-handshake:" + tunnel->lastError();
      } else if (peerSpiffeId(tunnel->ssl()) != agent.gatewayIdentity) {
        failure = "gateway-identity-mismatch:" + peerSpiffeId(tunnel->ssl()).value_or("none");
      } else {
        flow.gatewayHandshake = FlowReport::Clock::now() - step;
      }
    }
  }
  if (health_) health_->recordTunnel(reached, failure);
  if (!failure.empty()) {
    flow.reason = failure;
    resetAndClose(client);
    reporter_.report(flow);
    co_return;
  }

  // 5. The app's bytes, unchanged: the peeked hello (and anything after it) first.
  flow.decision = FlowDecision::Allowed;
  flow.tunnel = SSL_session_reused(tunnel->ssl()) ? "resumed" : "full";
  TcpStream app(std::move(client));
  ec = co_await tunnel->writeAll(std::span<const uint8_t>(peeked.data(), have));
  peeked = {};
  RelayResult relayed;
  if (!ec) relayed = co_await relayBoth(app, *tunnel, agent.idleTimeout);
  flow.reason = ec ? "gateway-write:" + ec.message() : relayed.outcome();
  flow.up = have + relayed.bytesAtoB;
  flow.down = relayed.bytesBtoA;
  if (relayed.bytesBtoA) flow.firstByte = relayed.firstByteBtoA - flow.started;
  if (!relayed.clean() || ec) resetAndClose(app.socket());
  reporter_.report(flow);
}

awaitable<void> Forwarder::passDirect(tcp::socket client, std::vector<uint8_t> peeked, size_t have,
                                      std::shared_ptr<const AgentRules> rules, FlowReport flow) {
  // The agent dials from the node's network namespace: the node's own addresses, its
  // loopback or the metadata service must not become reachable through a pass-through.
  const tcp::endpoint destination = flow.destination;
  if (auto refusal = rules->directGuard.check(fromAsio(destination.address()))) {
    flow.decision = FlowDecision::Denied;
    flow.reason = std::string("destination-refused:") + toString(*refusal);
    resetAndClose(client);
    reporter_.report(flow);
    co_return;
  }
  auto executor = co_await asio::this_coro::executor;
  boost::system::error_code ec;
  tcp::socket upstream(executor);
  ec = openMarkedSocket(upstream, destination.protocol(), socketMark_ ? rules->agent.socketMark : 0);
  std::string failure;
  if (ec) {
    failure = "local-socket-error:" + ec.message();
  } else {
    Deadline deadline(executor, rules->agent.directConnectTimeout, [&upstream] {
      boost::system::error_code ignored;
      upstream.cancel(ignored);
    });
    co_await upstream.async_connect(destination, asio::redirect_error(use_awaitable, ec));
    if (ec) failure = deadline.expired() ? "direct-connect-timeout" : "direct-connect:" + ec.message();
  }
  flow.decision = FlowDecision::Passthrough;
  if (!failure.empty()) {
    flow.reason = failure;
    resetAndClose(client);
    reporter_.report(flow);
    co_return;
  }
  upstream.set_option(tcp::no_delay(true), ec);
  TcpStream app(std::move(client));
  TcpStream origin(std::move(upstream));
  ec = co_await origin.writeAll(std::span<const uint8_t>(peeked.data(), have));
  peeked = {};
  RelayResult relayed;
  if (!ec) relayed = co_await relayBoth(app, origin, rules->agent.idleTimeout);
  flow.reason = ec ? "write:" + ec.message() : relayed.outcome();
  flow.up = have + relayed.bytesAtoB;
  flow.down = relayed.bytesBtoA;
  if (relayed.bytesBtoA) flow.firstByte = relayed.firstByteBtoA - flow.started;
  if (!relayed.clean() || ec) resetAndClose(app.socket());
  reporter_.report(flow);
}

}  // namespace sluice
