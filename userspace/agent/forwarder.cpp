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
#include "fd_limits.h"
#include "marked_socket.h"
#include "rate_limiter.h"
#include "relay.h"
#include "spawn.h"
#include "tunnel_protocol.h"

namespace sluice {
namespace {

using Clock = std::chrono::steady_clock;

// What one connection was, for its single log line.
struct FlowRecord {
  tcp::endpoint client;
  tcp::endpoint destination;
  uint64_t cgroupId = 0;
  std::string who = "cgroup=0 pod=-";  // PodDirectory::describe
  std::string sni = "-";
  Clock::time_point started = Clock::now();
};

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

// Denies are what an attacker provokes at will: at most 20 lines a second per reason,
// then one "deny-suppressed" line with the count when the next is written.
RateLimiter denyLog(20);

// The first read of a ClientHello takes at most this much; the buffer grows (doubling,
// up to agent.maxClientHelloBytes) only for a hello that needs it, so a connection that
// sends nothing holds almost nothing.
constexpr size_t kFirstHelloBuffer = 1536;

void logDenied(const FlowRecord& flow, const std::string& reason) {
  // The limiter's key is the reason's word before any ":detail".
  auto admission = denyLog.admit(std::string_view(reason).substr(0, reason.find(':')));
  if (!admission.log) return;
  if (admission.suppressed) {
    spdlog::warn("deny-suppressed reason={} count={}", reason.substr(0, reason.find(':')), admission.suppressed);
  }
  spdlog::warn("deny {} src={} dst={} sni={} reason={}", flow.who, formatEndpoint(flow.client),
               formatEndpoint(flow.destination), flow.sni, reason);
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

long millisSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

}  // namespace

Forwarder::Forwarder(asio::io_context& io, const BpfDatapath& datapath, std::shared_ptr<const AgentRules> rules,
                     const CertificateReloader& certificates)
    : io_(io),
      datapath_(datapath),
      rules_(std::move(rules)),
      certificates_(certificates),
      acceptor_(io),
      acceptor6_(io),
      limits_(std::make_shared<ConnectionLimits>(rules_->agent.maxConnections, rules_->agent.maxConnectionsPerPod)) {}

static void bindAndListen(tcp::acceptor& acceptor, const tcp::endpoint& endpoint) {
  acceptor.open(endpoint.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  // Every worker binds the same address; the kernel spreads new connections over them.
  acceptor.set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true));
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
  boost::system::error_code ignored;
  AcceptGuard guard(formatEndpoint(acceptor.local_endpoint(ignored)));
  while (acceptor.is_open()) {
    boost::system::error_code ec;
    tcp::socket client = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted) break;
    if (ec) {
      // EMFILE and friends: the waiting client is reset, the loop pauses (growing).
      asio::steady_timer pause(io_, guard.failed(acceptor, ec));
      co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    guard.succeeded();
    asio::co_spawn(io_, handle(std::move(client)), logEscapedException("agent connection"));
  }
}

awaitable<void> Forwarder::handle(tcp::socket client) {
  const std::shared_ptr<const AgentRules> rules = rules_;
  const AgentConfig& agent = rules->agent;
  auto executor = co_await asio::this_coro::executor;
  FlowRecord flow;
  boost::system::error_code ec;
  const tcp::endpoint peer = client.remote_endpoint(ec);
  if (ec) {
    resetAndClose(client);
    co_return;
  }
  flow.client = peer;
  client.set_option(tcp::no_delay(true), ec);

  // 1. Where did the app want to go? Published by sockops, keyed by the app's source.
  std::optional<sl_orig_dst> original = datapath_.takeOriginalDestination(kernelKey(peer));
  if (!original) {
    // Not redirected by us (someone dialled the agent directly), or the hand-off map
    // was full: there is nowhere safe to send it.
    logDenied(flow, "no-original-destination");
    resetAndClose(client);
    co_return;
  }
  flow.destination = fromKernel(original->dst);
  flow.cgroupId = original->cgroup_id;
  flow.who = pods_.describe(flow.cgroupId);
  // Caps: in all, and per pod (cgroup), so one pod cannot take the node's capacity.
  auto slot = limits_->acquire(std::to_string(flow.cgroupId));
  if (!slot.admitted()) {
    logDenied(flow, slot.verdict() == ConnectionLimits::Verdict::OverKey ? "pod-connection-limit" : "connection-limit");
    resetAndClose(client);
    co_return;
  }

  // 2. Read the ClientHello (possibly several segments and records) under a deadline.
  //    Nothing is allocated until the first bytes arrive.
  std::vector<uint8_t> peeked;
  size_t have = 0;
  HelloResult hello;
  {
    Deadline deadline(executor, agent.clientHelloTimeout, [&client] {
      boost::system::error_code ignored;
      client.cancel(ignored);
    });
    while (hello.status == HelloStatus::NeedMore) {
      size_t n = 0;
      if (peeked.empty()) {
        co_await client.async_wait(tcp::socket::wait_read, asio::redirect_error(use_awaitable, ec));
        if (!ec) peeked.resize(std::min<size_t>(kFirstHelloBuffer, agent.maxClientHelloBytes));
      } else if (have == peeked.size()) {
        peeked.resize(std::min<size_t>(peeked.size() * 2, agent.maxClientHelloBytes));
      }
      if (!ec) {
        n = co_await client.async_read_some(asio::buffer(peeked.data() + have, peeked.size() - have),
                                            asio::redirect_error(use_awaitable, ec));
      }
      if (ec) {
        logDenied(flow, deadline.expired()       ? "client-hello-timeout"
                        : ec == asio::error::eof ? "client-closed-before-hello"
                                                 : "client-read-error:" + ec.message());
        resetAndClose(client);
        co_return;
      }
      have += n;
      hello = parseClientHello(std::span<const uint8_t>(peeked.data(), have), agent.maxClientHelloBytes);
    }
  }
  if (hello.status != HelloStatus::Done) {
    logDenied(flow,
              std::string(hello.status == HelloStatus::NotTls ? "not-tls" : "bad-client-hello") + ":" + hello.error);
    resetAndClose(client);
    co_return;
  }
  // ECH: the name in the clear is only the outer, public one; the host the app reaches
  // is encrypted. Refused unless the rules say to decide by the outer name.
  if (hello.encryptedClientHello && agent.echPolicy == EchPolicy::Deny) {
    if (hello.serverName) flow.sni = *hello.serverName;
    logDenied(flow, "ech-refused");
    resetAndClose(client);
    co_return;
  }
  if (!hello.serverName) {
    logDenied(flow, "no-sni");
    resetAndClose(client);
    co_return;
  }
  flow.sni = *hello.serverName;

  // 3. Policy: deny by default.
  auto host = normalizeHostName(flow.sni);
  if (!host) {
    logDenied(flow, "invalid-sni");
    resetAndClose(client);
    co_return;
  }
  auto rule = rules->hosts.match(*host, flow.destination.port());
  if (!rule) {
    if (rules->outbound == OutboundPolicy::AllowAny) {
      std::string flowText = fmt::format("{} src={} dst={} sni={}", flow.who, formatEndpoint(flow.client),
                                         formatEndpoint(flow.destination), flow.sni);
      co_await passDirect(std::move(client), std::move(peeked), have, flow.destination, rules, flowText);
      co_return;
    }
    logDenied(flow, "host-not-allowed");
    resetAndClose(client);
    co_return;
  }

  // 4. mTLS to the gateway: SNI = host, port as ALPN, gateway identity checked.
  tcp::socket upstream(executor);
  ec = openMarkedSocket(upstream, tcp::v4(), socketMark_ ? agent.socketMark : 0);
  if (ec) {
    spdlog::error("flow {} src={} dst={} sni={} result=local-socket-error:{}", flow.who, formatEndpoint(flow.client),
                  formatEndpoint(flow.destination), flow.sni, ec.message());
    resetAndClose(client);
    co_return;
  }
  std::string failure;
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
    co_await upstream.async_connect(toAsio(agent.gatewayAddress), asio::redirect_error(use_awaitable, ec));
    if (ec) {
      failure = deadline.expired() ? "gateway-connect-timeout" : "gateway-connect:" + ec.message();
    } else {
      upstream.set_option(tcp::no_delay(true), ec);
      tunnel.emplace(std::move(upstream), certificates_.context().get(), TlsRole::Client);
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
      }
    }
  }
  if (!failure.empty()) {
    spdlog::error("flow {} src={} dst={} sni={} result={}", flow.who, formatEndpoint(flow.client),
                  formatEndpoint(flow.destination), flow.sni, failure);
    resetAndClose(client);
    co_return;
  }

  // 5. The app's bytes, unchanged: the peeked hello (and anything after it) first.
  TcpStream app(std::move(client));
  ec = co_await tunnel->writeAll(std::span<const uint8_t>(peeked.data(), have));
  peeked = {};
  RelayResult relayed;
  if (!ec) relayed = co_await relayBoth(app, *tunnel, agent.idleTimeout);
  std::string result = ec ? "gateway-write:" + ec.message() : relayed.outcome();
  spdlog::info("flow {} src={} dst={} sni={} rule={} tunnel={} up={} down={} duration_ms={} result={}", flow.who,
               formatEndpoint(flow.client), formatEndpoint(flow.destination), flow.sni, *rule,
               SSL_session_reused(tunnel->ssl()) ? "resumed" : "full", have + relayed.bytesAtoB, relayed.bytesBtoA,
               millisSince(flow.started), result);
  if (!relayed.clean() || ec) resetAndClose(app.socket());
}

awaitable<void> Forwarder::passDirect(tcp::socket client, std::vector<uint8_t> peeked, size_t have,
                                      tcp::endpoint destination, std::shared_ptr<const AgentRules> rules,
                                      std::string flowText) {
  // The agent dials from the node's network namespace: the node's own addresses, its
  // loopback or the metadata service must not become reachable through a pass-through.
  if (auto refusal = rules->directGuard.check(fromAsio(destination.address()))) {
    spdlog::warn("deny {} reason=destination-refused:{}", flowText, toString(*refusal));
    resetAndClose(client);
    co_return;
  }
  auto executor = co_await asio::this_coro::executor;
  const auto started = Clock::now();
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
  if (!failure.empty()) {
    spdlog::error("flow {} via=direct result={}", flowText, failure);
    resetAndClose(client);
    co_return;
  }
  upstream.set_option(tcp::no_delay(true), ec);
  TcpStream app(std::move(client));
  TcpStream origin(std::move(upstream));
  ec = co_await origin.writeAll(std::span<const uint8_t>(peeked.data(), have));
  peeked = {};
  RelayResult relayed;
  if (!ec) relayed = co_await relayBoth(app, origin, rules->agent.idleTimeout);
  spdlog::info("flow {} rule=- via=direct policy=ALLOW_ANY up={} down={} duration_ms={} result={}", flowText,
               have + relayed.bytesAtoB, relayed.bytesBtoA, millisSince(started),
               ec ? "write:" + ec.message() : relayed.outcome());
  if (!relayed.clean() || ec) resetAndClose(app.socket());
}

}  // namespace sluice
