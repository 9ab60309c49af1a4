#include "gateway_server.h"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <random>

#include "asio_address.h"
#include "byte_stream.h"
#include "marked_socket.h"
#include "relay.h"
#include "spawn.h"

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
  std::string connectionId = "-";  // the agent's sluice-connection-id for this flow
  Clock::time_point started = Clock::now();
};

void logAccess(const AccessRecord& r, uint64_t up, uint64_t down, const std::string& result) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - r.started).count();
  auto line = fmt::format(
      "access peer={} identity={} sni={} port={} upstream={} up={} down={} duration_ms={} result={} connection_id={} "
      "peer_serial={}",
      r.peerAddress, r.identity, r.sni, r.port, r.upstream, up, down, ms, result, r.connectionId, r.peerSerial);
  if (result == "ok") {
    spdlog::info("{}", line);
  } else {
    spdlog::warn("{}", line);
  }
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
  if (failure.starts_with("bad-")) return 400;
  if (failure.find("timeout") != std::string::npos) return 504;
  return 502;
}

// A named coroutine, not a capturing lambda: g++ 12 destroys the captures of a lambda
// coroutine handed to co_spawn twice.
awaitable<ResolveResult> resolveOnPool(const DnsResolver* resolver, std::string host) {
  co_return resolver->resolve(host);
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

}  // namespace

void GatewayServer::configureAlpn(SSL_CTX* ctx) {
  SSL_CTX_set_alpn_select_cb(ctx, selectH2, nullptr);
}

GatewayServer::GatewayServer(asio::io_context& io, asio::thread_pool& resolverPool,
                             std::shared_ptr<const GatewayRules> rules, const CertificateReloader& certificates)
    : io_(io),
      resolverPool_(resolverPool),
      rules_(std::move(rules)),
      certificates_(certificates),
      acceptor_(io),
      acceptor6_(io) {}

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

awaitable<void> GatewayServer::acceptLoop() {
  if (acceptor6_.is_open()) asio::co_spawn(io_, acceptOn(acceptor6_), logEscapedException("accept loop v6"));
  co_await acceptOn(acceptor_);
}

awaitable<void> GatewayServer::acceptOn(tcp::acceptor& acceptor) {
  while (acceptor.is_open()) {
    boost::system::error_code ec;
    tcp::socket agent = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted) break;
    if (ec) {
      spdlog::error("accept on {}: {}", formatEndpoint(rules_->gateway.listen), ec.message());
      asio::steady_timer pause(io_, std::chrono::milliseconds(50));
      co_await pause.async_wait(use_awaitable);
      continue;
    }
    asio::co_spawn(io_, handle(std::move(agent)), logEscapedException("gateway connection"));
  }
}

void GatewayServer::logRefused(const std::string& host, const GuardedAddresses::Refused& refused,
                               const std::string& flowText) {
  const char* reason = toString(refused.reason);
  uint64_t total = ++refusedTotal_[reason];
  spdlog::warn("dns-refused host={} address={} reason={} {} refused_total={}", host, formatIp(refused.address), reason,
               flowText, total);
}

awaitable<UpstreamTargets> GatewayServer::upstreamTargets(const GatewayRules& rules,
                                                          const UpstreamDestination& destination,
                                                          std::string flowText) {
  UpstreamTargets out;
  if (!destination.addressesBe.empty()) {
    for (uint32_t address : destination.addressesBe) out.addresses.push_back(IpAddress::fromV4(address));
    co_return out;
  }
  ResolveResult resolved;
  if (auto cached = rules.dnsCache->find(destination.host)) {
    resolved.addresses = std::move(*cached);
  } else {
    resolved =
        co_await asio::co_spawn(resolverPool_, resolveOnPool(rules.resolver.get(), destination.host), use_awaitable);
    rules.dnsCache->put(destination.host, resolved.addresses);
  }
  if (resolved.addresses.empty()) {
    out.failure = "dns-failed:" + destination.host + ":" + resolved.error;
    co_return out;
  }
  GuardedAddresses guarded = rules.guard.filter(resolved.addresses);
  for (const auto& refused : guarded.refused) logRefused(destination.host, refused, flowText);
  if (guarded.allowed.empty()) {
    out.failure = std::string("dns-refused:") + toString(guarded.refused.front().reason);
  }
  out.addresses = std::move(guarded.allowed);
  co_return out;
}

awaitable<void> GatewayServer::handle(tcp::socket agentSocket) {
  const std::shared_ptr<const GatewayRules> rules = rules_;
  auto executor = co_await asio::this_coro::executor;
  AccessRecord record;
  boost::system::error_code ec;
  auto peer = agentSocket.remote_endpoint(ec);
  record.peerAddress =
      ec ? "?"
         : (peer.address().is_v6() ? "[" + peer.address().to_string() + "]" : peer.address().to_string()) + ":" +
               std::to_string(peer.port());
  agentSocket.set_option(tcp::no_delay(true), ec);

  // 1. mTLS: the client certificate must chain to the mesh CA (OpenSSL verifies).
  auto tunnel = std::make_unique<TlsStream>(std::move(agentSocket), certificates_.context().get(), TlsRole::Server);
  {
    Deadline deadline(executor, rules->gateway.handshakeTimeout, [&tunnel] {
      boost::system::error_code ignored;
      tunnel->socket().cancel(ignored);
    });
    ec = co_await tunnel->handshake();
    if (ec) {
      logAccess(record, 0, 0, deadline.expired() ? "handshake-timeout" : "handshake-failed:" + tunnel->lastError());
      tunnel->abort();
      co_return;
    }
  }
  // 2. Authorize the identity, once per tunnel; hosts are checked per stream.
  record.identity = peerSpiffeId(tunnel->ssl()).value_or("-");
  if (X509* certificate = SSL_get0_peer_certificate(tunnel->ssl())) {
    record.peerSerial = describeCertificate(certificate).serial;
  }
  if (!rules->gateway.allowedClients.contains(record.identity)) {
    logAccess(record, 0, 0, "identity-not-allowed");
    tunnel->abort();
    co_return;
  }
  const unsigned char* alpn = nullptr;
  unsigned int alpnLength = 0;
  SSL_get0_alpn_selected(tunnel->ssl(), &alpn, &alpnLength);
  if (std::string_view(reinterpret_cast<const char*>(alpn), alpnLength) != "h2") {
    logAccess(record, 0, 0, "no-h2-alpn");
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
  co_await connection->run();
  connection->onRequest = nullptr;  // the handler captures nothing that outlives us
  spdlog::info("tunnel peer={} identity={} duration_ms={} result=closed:{} peer_serial={}", peer->address,
               peer->identity, std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count(),
               connection->closeReason(), peer->serial);
}

awaitable<std::string> GatewayServer::dialUpstream(const GatewayRules& rules, const std::string& rule,
                                                   const std::string& host, uint16_t port, const std::string& flowText,
                                                   tcp::socket& upstream, std::string& upstreamText) {
  // 3. Where to: the route's destination (weighted), its STATIC addresses as written or
  //    DNS answers from the rules' DNS server (c-ares blocks, so on the worker pool),
  //    each answer judged by the address guard.
  const UpstreamDestination destination = pickDestination(rules.config.routeFor(rule, host, port));
  UpstreamTargets targets = co_await upstreamTargets(rules, destination, flowText);
  if (!targets.failure.empty()) co_return targets.failure;

  // 4. Connect, trying each address in turn within one deadline.
  auto executor = co_await asio::this_coro::executor;
  boost::system::error_code ec;
  std::string failure = "upstream-connect-failed";
  Deadline deadline(executor, rules.gateway.upstreamConnectTimeout, [&upstream] {
    boost::system::error_code ignored;
    upstream.cancel(ignored);
  });
  for (const IpAddress& address : targets.addresses) {
    tcp::endpoint endpoint(toAsio(address), destination.port);
    upstreamText =
        (address.isV6 ? "[" + formatIp(address) + "]" : formatIp(address)) + ":" + std::to_string(destination.port);
    boost::system::error_code ignored;
    upstream.close(ignored);
    // Marked, so that a redirect enrolled on the egress node's own cgroups (whose agent
    // trusts this namespace) cannot send the gateway's dial back into sluice.
    ec = openMarkedSocket(upstream, endpoint.protocol(), rules.gateway.socketMark);
    if (!ec) co_await upstream.async_connect(endpoint, asio::redirect_error(use_awaitable, ec));
    if (!ec) co_return std::string();
    failure = deadline.expired() ? "upstream-connect-timeout" : "upstream-connect:" + ec.message();
    if (deadline.expired()) break;
  }
  co_return failure;
}

awaitable<void> GatewayServer::handleStream(std::shared_ptr<TunnelStream> stream,
                                            std::shared_ptr<const TunnelPeer> peer) {
  const std::shared_ptr<const GatewayRules> rules = rules_;
  auto executor = co_await asio::this_coro::executor;
  AccessRecord record;
  record.peerAddress = peer->address;
  record.identity = peer->identity;
  record.peerSerial = peer->serial;
  const std::string& id = stream->connectionId();
  bool idValid = id.size() == 16 && std::all_of(id.begin(), id.end(), [](char c) {
                   return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                 });
  record.connectionId = idValid ? id : "-";
  auto refuse = [&](const std::string& failure) {
    stream->respond(statusFor(failure), failure);
    logAccess(record, 0, 0, failure);
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
  std::string failure = co_await dialUpstream(
      *rules, *rule, host, port, "peer=" + record.peerAddress + " identity=" + record.identity + " sni=" + record.sni,
      upstream, record.upstream);
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
  RelayResult relayed = co_await relayBoth(*stream, origin, rules->gateway.idleTimeout);
  std::string result = relayed.outcome();
  if (stream->isReset() && !relayed.idleTimeout && stream->resetReason() != "aborted") {
    result = "reset:" + stream->resetReason();
  }
  if (!relayed.clean()) {
    stream->abort();
    origin.abort();
  }
  logAccess(record, relayed.bytesAtoB, relayed.bytesBtoA, result);
}

}  // namespace sluice
