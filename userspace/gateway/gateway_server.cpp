#include "gateway_server.h"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <random>

#include "access_report.h"
#include "asio_address.h"
#include "byte_stream.h"
#include "fd_limits.h"
#include "marked_socket.h"
#include "rate_limiter.h"
#include "relay.h"
#include "spawn.h"

namespace sluice {
namespace {

using Clock = std::chrono::steady_clock;

// A connection that closes before sending a byte (an agent's TCP health probe) is not a
// flow: it gets no access record. Waits at most until the handshake deadline cancels it.
awaitable<bool> closedBeforeFirstByte(tcp::socket& socket) {
  boost::system::error_code ec;
  co_await socket.async_wait(tcp::socket::wait_read, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return false;
  uint8_t byte;
  ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  co_return n == 0;
}

// Only "h2": the agent's tunnel. A client that offers something else gets no ALPN and
// is refused after the handshake (so handshake errors stay about identity).
int selectH2(SSL*, const unsigned char** out, unsigned char* outLength, const unsigned char* in, unsigned int inLength,
             void*) {
  for (unsigned int i = 0; i < inLength;) {
    unsigned int length = in[i];
    if (i + 1 + length > inLength) break;
    if (std::string_view(reinterpret_cast<const char*>(in + i + 1), length) == "h2") {
      *out = in + i + 1;
      *outLength = static_cast<unsigned char>(length);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + length;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// "host:port" of a CONNECT: a DNS name (never an address: the agent sends the SNI) and
// a port 1..65535.
bool parseAuthority(const std::string& authority, std::string& host, uint16_t& port) {
  auto colon = authority.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  unsigned value = 0;
  const char* begin = authority.data() + colon + 1;
  const char* end = authority.data() + authority.size();
  auto [stop, ec] = std::from_chars(begin, end, value);
  if (begin == end || ec != std::errc() || stop != end || value == 0 || value > 65535) return false;
  auto normalized = normalizeHostName(std::string_view(authority).substr(0, colon));
  if (!normalized) return false;
  host = *normalized;
  port = static_cast<uint16_t>(value);
  return true;
}

// A refusal's HTTP status: policy 403, malformed 400, the far side 502/504.
int statusFor(const std::string& failure) {
  if (failure == "host-not-allowed") return 403;
  if (failure.ends_with("-limit")) return 429;
  if (failure.starts_with("bad-")) return 400;
  if (failure.find("timeout") != std::string::npos) return 504;
  return 502;
}

// A route's destinations share traffic by weight (VirtualService route weights).
UpstreamDestination pickDestination(const GatewayRoute& route) {
  if (route.destinations.size() == 1) return route.destinations.front();
  thread_local std::mt19937 random{std::random_device{}()};
  uint32_t total = 0;
  for (const auto& d : route.destinations) total += d.weight;
  uint32_t ticket = std::uniform_int_distribution<uint32_t>(0, total - 1)(random);
  for (const auto& d : route.destinations) {
    if (ticket < d.weight) return d;
    ticket -= d.weight;
  }
  return route.destinations.back();
}

// Refusals by a cap: counted by the caps, logged at most 10 a second per reason.
RateLimiter refusalLog(10);

void resetSocket(tcp::socket& socket) {
  boost::system::error_code ignored;
  socket.set_option(asio::socket_base::linger(true, 0), ignored);
  socket.close(ignored);
}

// Over a cap: the record (and its count in the metrics) at most 10 a second per result,
// so that a flood of refused connections cannot flood the log.
void reportOverCap(AccessReporter& reporter, AccessReport& record, const std::string& result, uint64_t refusedTotal) {
  auto admission = refusalLog.admit(result);
  if (!admission.log) return;
  if (admission.suppressed) spdlog::warn("access-suppressed result={} count={}", result, admission.suppressed);
  record.result = result;
  reporter.started();
  reporter.report(record);
  spdlog::warn("limit result={} refused_total={}", result, refusedTotal);
}

}  // namespace

DnsResolverOptions dnsOptions(const GatewayConfig& gateway) {
  DnsResolverOptions options;
  options.server = gateway.dnsServer;
  options.timeout = gateway.dnsTimeout;
  options.cache.maxPositive = gateway.dnsCacheLifetime;
  options.cache.negative = gateway.dnsNegativeCacheLifetime;
  options.cache.minPositive = gateway.dnsMinCacheLifetime;
  options.cache.maxEntries = gateway.dnsCacheSize;
  return options;
}

void GatewayServer::configureAlpn(SSL_CTX* ctx) {
  SSL_CTX_set_alpn_select_cb(ctx, selectH2, nullptr);
}

GatewayServer::GatewayServer(asio::io_context& io, std::shared_ptr<const GatewayRules> rules,
                             const CertificateReloader& certificates)
    : io_(io),
      rules_(std::move(rules)),
      dialer_(io),
      limits_(std::make_shared<GatewayLimits>(rules_->gateway)),
      certificates_(certificates),
      acceptor_(io),
      acceptor6_(io) {
  dialer_.useDns(dnsOptions(rules_->gateway));
}

void GatewayServer::setRules(std::shared_ptr<const GatewayRules> rules) {
  asio::dispatch(io_, [this, rules = std::move(rules)]() mutable {
    dialer_.useDns(dnsOptions(rules->gateway));
    limits_->update(rules->gateway);
    rules_ = std::move(rules);
  });
}

void GatewayServer::listen() {
  const auto& listen = rules_->gateway.listen;
  auto bind = [](tcp::acceptor& acceptor, const tcp::endpoint& endpoint) {
    acceptor.open(endpoint.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    // Every worker binds the same address; the kernel spreads new connections over them.
    acceptor.set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true));
    if (endpoint.address().is_v6()) acceptor.set_option(asio::ip::v6_only(true));
    boost::system::error_code ec;
    acceptor.bind(endpoint, ec);
    if (ec) {
      const auto& a = endpoint.address();
      throw std::runtime_error("binding " + (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" +
                               std::to_string(endpoint.port()) + ": " + ec.message());
    }
    acceptor.listen(asio::socket_base::max_listen_connections);
  };
  bind(acceptor_, tcp::endpoint(asio::ip::address_v4(ntohl(listen.addressBe)), listen.port));
  if (rules_->gateway.listen6) {
    bind(acceptor6_, tcp::endpoint(asio::ip::address_v6(*rules_->gateway.listen6), listen.port));
  }
}

void GatewayServer::stop() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  acceptor6_.close(ignored);
}

void GatewayServer::drain() {
  asio::dispatch(io_, [this] {
    draining_ = true;
    stop();
    for (auto& connection : liveTunnels_) connection->goAway();
  });
}

awaitable<void> GatewayServer::acceptLoop() {
  if (acceptor6_.is_open()) asio::co_spawn(io_, acceptOn(acceptor6_), logEscapedException("accept loop v6"));
  co_await acceptOn(acceptor_);
}

awaitable<void> GatewayServer::acceptOn(tcp::acceptor& acceptor) {
  return acceptConnections(
      acceptor, [this](tcp::socket agent, tcp::endpoint) { return handle(std::move(agent)); }, "gateway connection");
}

awaitable<void> GatewayServer::handle(tcp::socket agentSocket) {
  const std::shared_ptr<const GatewayRules> rules = rules_;
  auto executor = co_await asio::this_coro::executor;
  AccessReport record;
  // A tunnel that never carries a stream has one record: how it was refused.
  auto refuseTunnel = [&](std::string result) {
    record.result = std::move(result);
    reporter_.started();
    reporter_.report(record);
  };
  boost::system::error_code ec;
  auto peer = agentSocket.remote_endpoint(ec);
  record.peerAddress =
      ec ? "?"
         : (peer.address().is_v6() ? "[" + peer.address().to_string() + "]" : peer.address().to_string()) + ":" +
               std::to_string(peer.port());
  // 0. Caps on handshakes in progress, in all and per peer address: a pod that opens
  //    connections and never handshakes cannot hold the gateway for the others.
  auto handshakeSlot = limits_->handshakes.acquire(ec ? std::string("?") : peer.address().to_string());
  if (!handshakeSlot.admitted()) {
    const bool total = handshakeSlot.verdict() == ConnectionLimits::Verdict::OverTotal;
    reportOverCap(reporter_, record, total ? "handshake-limit" : "handshake-limit-per-address",
                  total ? limits_->handshakes.refusedTotal() : limits_->handshakes.refusedKey());
    resetSocket(agentSocket);
    co_return;
  }
  agentSocket.set_option(tcp::no_delay(true), ec);
  {
    Deadline deadline(executor, rules->gateway.handshakeTimeout, [&agentSocket] {
      boost::system::error_code ignored;
      agentSocket.cancel(ignored);
    });
    if (co_await closedBeforeFirstByte(agentSocket)) {
      reporter_.emptyConnection();
      spdlog::debug("connection from {} closed before its first byte (a health probe)", record.peerAddress);
      co_return;
    }
    if (deadline.expired()) {
      refuseTunnel("handshake-timeout");
      co_return;
    }
  }

  // 1. mTLS: the client certificate must chain to the mesh CA (OpenSSL verifies).
  auto tunnel = std::make_unique<TlsStream>(std::move(agentSocket), certificates_.context().get(), TlsRole::Server);
  {
    Deadline deadline(executor, rules->gateway.handshakeTimeout, [&tunnel] {
      boost::system::error_code ignored;
      tunnel->socket().cancel(ignored);
    });
    const auto started = AccessReport::Clock::now();
    ec = co_await tunnel->handshake();
    if (ec) {
      refuseTunnel(deadline.expired() ? "handshake-timeout" : "handshake-failed:" + tunnel->lastError());
      tunnel->abort();
      co_return;
    }
    record.handshake = AccessReport::Clock::now() - started;
  }
  handshakeSlot.release();
  // 2. Authorize the identity, once per tunnel; hosts are checked per stream.
  record.identity = peerSpiffeId(tunnel->ssl()).value_or("-");
  if (X509* certificate = SSL_get0_peer_certificate(tunnel->ssl())) {
    record.peerSerial = describeCertificate(certificate).serial;
  }
  if (!rules->gateway.allowedClients.contains(record.identity)) {
    refuseTunnel("identity-not-allowed");
    tunnel->abort();
    co_return;
  }
  // Connections per client identity (its tunnels here, its streams in handleStream): a
  // node's stolen certificate cannot hold every socket of the gateway.
  auto clientSlot = limits_->clients.acquire(record.identity);
  if (!clientSlot.admitted()) {
    reportOverCap(reporter_, record, "client-connection-limit", limits_->clients.refusedKey());
    tunnel->abort();
    co_return;
  }
  const unsigned char* alpn = nullptr;
  unsigned int alpnLength = 0;
  SSL_get0_alpn_selected(tunnel->ssl(), &alpn, &alpnLength);
  if (std::string_view(reinterpret_cast<const char*>(alpn), alpnLength) != "h2") {
    refuseTunnel("no-h2-alpn");
    tunnel->abort();
    co_return;
  }
  auto tunnelPeer = std::make_shared<TunnelPeer>(TunnelPeer{record.peerAddress, record.identity, record.peerSerial});
  co_await serveTunnel(std::move(tunnel), std::move(tunnelPeer));
}

awaitable<void> GatewayServer::serveTunnel(std::unique_ptr<TlsStream> tls, std::shared_ptr<const TunnelPeer> peer) {
  const auto& gateway = rules_->gateway;
  H2Settings settings;
  settings.maxConcurrentStreams = gateway.maxStreamsPerTunnel;
  settings.pingInterval = gateway.pingInterval;
  settings.pingTimeout = gateway.pingTimeout;
  auto connection = std::make_shared<H2Connection>(std::move(tls), H2Role::Server, settings);
  connection->onRequest = [this, peer](std::shared_ptr<TunnelStream> stream) {
    asio::co_spawn(io_, handleStream(std::move(stream), peer), logEscapedException("gateway stream"));
  };
  const auto started = Clock::now();
  spdlog::debug("tunnel peer={} identity={} result=open", peer->address, peer->identity);
  ActiveFlows::Flow active = tunnels_ ? tunnels_->track(io_.get_executor()) : ActiveFlows::Flow();
  active.onReset([connection] { connection->close("drain-deadline"); });
  liveTunnels_.insert(connection);
  if (draining_) connection->goAway();
  co_await connection->run();
  liveTunnels_.erase(connection);
  active.end();
  connection->onRequest = nullptr;  // the handler captures nothing that outlives us
  spdlog::info("tunnel peer={} identity={} duration_ms={} result=closed:{} peer_serial={}", peer->address,
               peer->identity, std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count(),
               connection->closeReason(), peer->serial);
}

awaitable<std::string> GatewayServer::dialUpstream(const GatewayRules& rules, const std::string& rule,
                                                   const std::string& host, uint16_t port, const std::string& flowText,
                                                   tcp::socket& upstream, AccessReport& record, DialCancel& cancel) {
  // 3-4. Where to and connect: the route's destination (weighted), its STATIC addresses
  //      or the DNS answers the address guard allows, dialed Happy Eyeballs style.
  const UpstreamDestination destination = pickDestination(rules.config.routeFor(rule, host, port));
  const DialRules dialRules{rules.guard, rules.gateway.socketMark, rules.gateway.upstreamConnectTimeout, &cancel};
  DialResult dialed = co_await dialer_.dial(dialRules, destination, flowText);
  if (dialed.failure.empty() || dialed.failure.starts_with("upstream-") || cancel.cancelled()) {
    record.upstream = dialed.upstream;  // the address dialed (last), or "-" before any
  }
  record.dns = dialed.dnsTime;
  if (dialed.dnsCacheHit) reporter_.dnsCacheHit();
  for (const char* reason : dialed.refusedReasons) reporter_.refusedAddress(reason);
  if (dialed.failure.empty()) upstream = std::move(dialed.socket);
  co_return dialed.failure;
}

awaitable<void> GatewayServer::handleStream(std::shared_ptr<TunnelStream> stream,
                                            std::shared_ptr<const TunnelPeer> peer) {
  const std::shared_ptr<const GatewayRules> rules = rules_;
  auto executor = co_await asio::this_coro::executor;
  AccessReport record;
  record.peerAddress = peer->address;
  record.identity = peer->identity;
  record.peerSerial = peer->serial;
  const std::string& id = stream->connectionId();
  bool idValid = id.size() == 16 && std::all_of(id.begin(), id.end(), [](char c) {
                   return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                 });
  record.connectionId = idValid ? id : "-";
  // Streams per client identity, counted with its tunnels: one node's pods cannot take
  // every upstream socket.
  auto clientSlot = limits_->clients.acquire(record.identity);
  if (!clientSlot.admitted()) {
    stream->respond(statusFor("client-connection-limit"), "client-connection-limit");
    reportOverCap(reporter_, record, "client-connection-limit", limits_->clients.refusedKey());
    co_return;
  }
  reporter_.started();
  // Until it ends, a drain waits for this stream; at the drain deadline it is reset.
  ActiveFlows::Flow active = streams_ ? streams_->track(executor) : ActiveFlows::Flow();
  active.onReset([stream] { stream->abort(); });
  auto refuse = [&](const std::string& failure) {
    stream->respond(statusFor(failure), failure);
    record.result = failure;
    reporter_.report(record);
  };

  // Per stream: what and where. The host must be a name (the agent sends the SNI).
  std::string host;
  uint16_t port = 0;
  if (stream->method() != "CONNECT") {
    refuse("bad-method");
    co_return;
  }
  if (!parseAuthority(stream->authority(), host, port)) {
    record.sni = stream->authority().empty() ? "-" : stream->authority().substr(0, 64);
    refuse("bad-authority");
    co_return;
  }
  record.sni = host;
  record.port = port;
  auto rule = rules->hosts.match(host, port);
  if (!rule) {
    refuse("host-not-allowed");
    co_return;
  }

  tcp::socket upstream(executor);
  // The stream's end ends its dial (its DNS wait, its connects): the drain's deadline, or
  // the agent's reset (its app gave up, or its drain). Otherwise the dial would wait out
  // its timeouts for a stream that is gone, and reach the origin only to reset it.
  DialCancel dialCancel;
  active.onReset([stream, &dialCancel] {
    dialCancel.cancel("drain-deadline");  // first: the stream's own hook would say reset
    stream->abort();
  });
  stream->onReset([&dialCancel, &stream = *stream] { dialCancel.cancel("reset:" + stream.resetReason()); });
  struct ClearResetHook {  // on every way out: the stream may outlive this frame
    TunnelStream& stream;
    ~ClearResetHook() { stream.onReset(nullptr); }
  } clearResetHook{*stream};
  if (stream->isReset()) dialCancel.cancel("reset:" + stream->resetReason());
  const auto dialStarted = AccessReport::Clock::now();
  std::string failure = co_await dialUpstream(
      *rules, *rule, host, port, "peer=" + record.peerAddress + " identity=" + record.identity + " sni=" + record.sni,
      upstream, record, dialCancel);
  stream->onReset(nullptr);
  if (dialCancel.cancelled()) {
    // Cut short (the drain, the agent's reset): not a connect time, not the dial's failure.
    refuse(active.resetByDrain() ? "drain-deadline" : dialCancel.reason());
    co_return;
  }
  record.upstreamConnect = AccessReport::Clock::now() - dialStarted;  // DNS (if not cached) and connect
  if (!failure.empty()) {
    refuse(failure);
    co_return;
  }
  boost::system::error_code ec;
  upstream.set_option(tcp::no_delay(true), ec);
  stream->respond(200, "");

  // 5. Relay: agent -> origin is "up". An origin RST becomes RST_STREAM, an RST_STREAM an
  //    origin RST (both by abort()).
  TcpStream origin(std::move(upstream));
  active.onReset([&stream, &origin] {
    stream->abort();
    origin.abort();
  });
  RelayResult relayed = co_await relayBoth(*stream, origin, rules->gateway.idleTimeout);
  active.onReset(nullptr);
  std::string result = relayed.outcome();
  if (stream->isReset() && !relayed.idleTimeout && stream->resetReason() != "aborted") {
    result = "reset:" + stream->resetReason();
  }
  if (active.resetByDrain()) result = "drain-deadline";
  if (!relayed.clean()) {
    stream->abort();
    origin.abort();
  }
  record.result = result;
  record.up = relayed.bytesAtoB;
  record.down = relayed.bytesBtoA;
  reporter_.report(record);
}

}  // namespace sluice
