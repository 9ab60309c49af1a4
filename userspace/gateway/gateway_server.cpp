#include "gateway_server.h"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <random>

#include "asio_address.h"
#include "byte_stream.h"
#include "fd_limits.h"
#include "marked_socket.h"
#include "rate_limiter.h"
#include "relay.h"
#include "spawn.h"
#include "tunnel_protocol.h"

namespace sluice {
namespace {

using Clock = std::chrono::steady_clock;

struct AccessRecord {
  std::string peerAddress;
  std::string identity = "-";
  std::string peerSerial = "-";  // which version of a rotating agent certificate came
  std::string sni = "-";
  uint16_t port = 0;
  std::string upstream = "-";
  Clock::time_point started = Clock::now();
};

void logAccess(const AccessRecord& r, uint64_t up, uint64_t down, const std::string& result) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - r.started).count();
  auto line = fmt::format(
      "access peer={} identity={} sni={} port={} upstream={} up={} down={} duration_ms={} result={} peer_serial={}",
      r.peerAddress, r.identity, r.sni, r.port, r.upstream, up, down, ms, result, r.peerSerial);
  if (result == "ok") {
    spdlog::info("{}", line);
  } else {
    spdlog::warn("{}", line);
  }
}

int selectPortAlpn(SSL*, const unsigned char** out, unsigned char* outLength, const unsigned char* in,
                   unsigned int inLength, void*) {
  // The client's list is length-prefixed protocol ids; take the first of ours.
  for (unsigned int i = 0; i < inLength;) {
    unsigned int length = in[i];
    if (i + 1 + length > inLength) break;
    std::string_view protocol(reinterpret_cast<const char*>(in + i + 1), length);
    if (parsePortAlpn(protocol)) {
      *out = in + i + 1;
      *outLength = static_cast<unsigned char>(length);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + length;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;  // not a sluice agent: no_application_protocol
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

void logOverCap(const AccessRecord& record, const std::string& result, uint64_t refusedTotal) {
  auto admission = refusalLog.admit(result);
  if (!admission.log) return;
  if (admission.suppressed) spdlog::warn("access-suppressed result={} count={}", result, admission.suppressed);
  logAccess(record, 0, 0, result);
  spdlog::warn("limit result={} refused_total={}", result, refusedTotal);
}

}  // namespace

DnsResolverOptions dnsOptions(const GatewayConfig& gateway) {
  DnsResolverOptions options;
  options.server = gateway.dnsServer;
  options.timeout = gateway.dnsTimeout;
  options.cache.maxPositive = gateway.dnsCacheLifetime;
  options.cache.negative = gateway.dnsNegativeCacheLifetime;
  options.cache.maxEntries = gateway.dnsCacheSize;
  return options;
}

void GatewayServer::configureAlpn(SSL_CTX* ctx) {
  SSL_CTX_set_alpn_select_cb(ctx, selectPortAlpn, nullptr);
}

GatewayServer::GatewayServer(asio::io_context& io, std::shared_ptr<const GatewayRules> rules,
                             const CertificateReloader& certificates)
    : io_(io),
      rules_(std::move(rules)),
      dialer_(io),
      limits_(std::make_shared<GatewayLimits>(rules_->gateway)),
      certificates_(certificates),
      acceptor_(io) {
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
  tcp::endpoint endpoint(asio::ip::address_v4(ntohl(listen.addressBe)), listen.port);
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  // Every worker binds the same address; the kernel spreads new connections over them.
  acceptor_.set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true));
  boost::system::error_code ec;
  acceptor_.bind(endpoint, ec);
  if (ec) throw std::runtime_error("binding " + formatEndpoint(listen) + ": " + ec.message());
  acceptor_.listen(asio::socket_base::max_listen_connections);
}

void GatewayServer::stop() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

awaitable<void> GatewayServer::acceptLoop() {
  AcceptGuard guard(formatEndpoint(rules_->gateway.listen));
  while (acceptor_.is_open()) {
    boost::system::error_code ec;
    tcp::socket agent = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted) break;
    if (ec) {
      // EMFILE and friends: the waiting client is reset, the loop pauses (growing).
      asio::steady_timer pause(io_, guard.failed(acceptor_, ec));
      co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    guard.succeeded();
    asio::co_spawn(io_, handle(std::move(agent)), logEscapedException("gateway connection"));
  }
}

awaitable<void> GatewayServer::handle(tcp::socket agentSocket) {
  const std::shared_ptr<const GatewayRules> rules = rules_;
  auto executor = co_await asio::this_coro::executor;
  AccessRecord record;
  boost::system::error_code ec;
  auto peer = agentSocket.remote_endpoint(ec);
  record.peerAddress = ec ? "?" : peer.address().to_string() + ":" + std::to_string(peer.port());
  // 0. Caps on handshakes in progress, in all and per peer address: a pod that opens
  //    connections and never handshakes cannot hold the gateway for the others.
  auto handshakeSlot = limits_->handshakes.acquire(ec ? std::string("?") : peer.address().to_string());
  if (!handshakeSlot.admitted()) {
    const bool total = handshakeSlot.verdict() == ConnectionLimits::Verdict::OverTotal;
    logOverCap(record, total ? "handshake-limit" : "handshake-limit-per-address",
               total ? limits_->handshakes.refusedTotal() : limits_->handshakes.refusedKey());
    resetSocket(agentSocket);
    co_return;
  }
  agentSocket.set_option(tcp::no_delay(true), ec);

  // 1. mTLS: the client certificate must chain to the mesh CA (OpenSSL verifies).
  TlsStream tunnel(std::move(agentSocket), certificates_.context().get(), TlsRole::Server);
  {
    Deadline deadline(executor, rules->gateway.handshakeTimeout, [&tunnel] {
      boost::system::error_code ignored;
      tunnel.socket().cancel(ignored);
    });
    ec = co_await tunnel.handshake();
    if (ec) {
      logAccess(record, 0, 0, deadline.expired() ? "handshake-timeout" : "handshake-failed:" + tunnel.lastError());
      tunnel.abort();
      co_return;
    }
  }
  handshakeSlot.release();
  // 2. Authorize: identity, then host and port.
  record.identity = peerSpiffeId(tunnel.ssl()).value_or("-");
  if (X509* certificate = SSL_get0_peer_certificate(tunnel.ssl())) {
    record.peerSerial = describeCertificate(certificate).serial;
  }
  if (!rules->gateway.allowedClients.contains(record.identity)) {
    logAccess(record, 0, 0, "identity-not-allowed");
    tunnel.abort();
    co_return;
  }
  auto clientSlot = limits_->clients.acquire(record.identity);
  if (!clientSlot.admitted()) {
    logOverCap(record, "client-connection-limit", limits_->clients.refusedKey());
    tunnel.abort();
    co_return;
  }
  const char* sni = SSL_get_servername(tunnel.ssl(), TLSEXT_NAMETYPE_host_name);
  record.sni = sni ? sni : "-";
  const unsigned char* alpn = nullptr;
  unsigned int alpnLength = 0;
  SSL_get0_alpn_selected(tunnel.ssl(), &alpn, &alpnLength);
  auto port = parsePortAlpn(std::string_view(reinterpret_cast<const char*>(alpn), alpnLength));
  auto host = sni ? normalizeHostName(sni) : std::nullopt;
  if (!host || !port) {
    logAccess(record, 0, 0, !host ? "no-valid-sni" : "no-port-alpn");
    tunnel.abort();
    co_return;
  }
  record.port = *port;
  auto rule = rules->hosts.match(*host, *port);
  if (!rule) {
    logAccess(record, 0, 0, "host-not-allowed");
    tunnel.abort();
    co_return;
  }

  // 3-4. Where to and connect: the route's destination (weighted), its STATIC addresses
  //      or the DNS answers the address guard allows, dialed Happy Eyeballs style.
  const UpstreamDestination destination = pickDestination(rules->config.routeFor(*rule, *host, *port));
  const DialRules dialRules{rules->guard, rules->gateway.socketMark, rules->gateway.upstreamConnectTimeout};
  DialResult dialed = co_await dialer_.dial(
      dialRules, destination, "peer=" + record.peerAddress + " identity=" + record.identity + " sni=" + record.sni);
  if (!dialed.failure.empty()) {
    if (dialed.failure.rfind("upstream-", 0) == 0) record.upstream = dialed.upstream;
    logAccess(record, 0, 0, dialed.failure);
    tunnel.abort();
    co_return;
  }
  record.upstream = dialed.upstream;
  tcp::socket upstream = std::move(dialed.socket);
  upstream.set_option(tcp::no_delay(true), ec);

  // 5. Relay: agent -> origin is "up".
  TcpStream origin(std::move(upstream));
  RelayResult relayed = co_await relayBoth(tunnel, origin, rules->gateway.idleTimeout);
  logAccess(record, relayed.bytesAtoB, relayed.bytesBtoA, relayed.outcome());
}

}  // namespace sluice
