#include "gateway_server.h"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <chrono>
#include <random>

#include "access_report.h"
#include "asio_address.h"
#include "byte_stream.h"
#include "marked_socket.h"
#include "relay.h"
#include "spawn.h"
#include "tunnel_protocol.h"

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
  SSL_CTX_set_alpn_select_cb(ctx, selectPortAlpn, nullptr);
}

GatewayServer::GatewayServer(asio::io_context& io, asio::thread_pool& resolverPool,
                             std::shared_ptr<const GatewayRules> rules, const CertificateReloader& certificates)
    : io_(io), resolverPool_(resolverPool), rules_(std::move(rules)), certificates_(certificates), acceptor_(io) {}

void GatewayServer::listen() {
  const auto& listen = rules_->gateway.listen;
  tcp::endpoint endpoint(asio::ip::address_v4(ntohl(listen.addressBe)), listen.port);
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
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
  while (acceptor_.is_open()) {
    boost::system::error_code ec;
    tcp::socket agent = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
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
  reporter_.refusedAddress(reason);
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
  if (const auto* cached = rules.dnsCache->find(destination.host)) {
    resolved.addresses = *cached;
    reporter_.dnsCacheHit();
  } else {
    const auto started = AccessReport::Clock::now();
    resolved =
        co_await asio::co_spawn(resolverPool_, resolveOnPool(rules.resolver.get(), destination.host), use_awaitable);
    out.dnsTime = AccessReport::Clock::now() - started;
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
  AccessReport record;
  boost::system::error_code ec;
  auto peer = agentSocket.remote_endpoint(ec);
  record.peerAddress = ec ? "?" : peer.address().to_string() + ":" + std::to_string(peer.port());
  agentSocket.set_option(tcp::no_delay(true), ec);
  // The one record of this connection: what it was and how it ended.
  auto finish = [&](std::string result, uint64_t up = 0, uint64_t down = 0) {
    record.result = std::move(result);
    record.up = up;
    record.down = down;
    reporter_.report(record);
  };
  {
    Deadline deadline(executor, rules->gateway.handshakeTimeout, [&agentSocket] {
      boost::system::error_code ignored;
      agentSocket.cancel(ignored);
    });
    const bool empty = co_await closedBeforeFirstByte(agentSocket);
    if (empty) {
      reporter_.emptyConnection();
      spdlog::debug("connection from {} closed before its first byte (a health probe)", record.peerAddress);
      co_return;
    }
    reporter_.started();
    if (deadline.expired()) {
      finish("handshake-timeout");
      co_return;
    }
  }
  // 1. mTLS: the client certificate must chain to the mesh CA (OpenSSL verifies).
  TlsStream tunnel(std::move(agentSocket), certificates_.context(), TlsRole::Server);
  {
    Deadline deadline(executor, rules->gateway.handshakeTimeout, [&tunnel] {
      boost::system::error_code ignored;
      tunnel.socket().cancel(ignored);
    });
    const auto started = AccessReport::Clock::now();
    ec = co_await tunnel.handshake();
    if (ec) {
      finish(deadline.expired() ? "handshake-timeout" : "handshake-failed:" + tunnel.lastError());
      tunnel.abort();
      co_return;
    }
    record.handshake = AccessReport::Clock::now() - started;
  }
  // 2. Authorize: identity, then host and port.
  record.identity = peerSpiffeId(tunnel.ssl()).value_or("-");
  if (X509* certificate = SSL_get0_peer_certificate(tunnel.ssl())) {
    record.peerSerial = describeCertificate(certificate).serial;
  }
  if (!rules->gateway.allowedClients.contains(record.identity)) {
    finish("identity-not-allowed");
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
    finish(!host ? "no-valid-sni" : "no-port-alpn");
    tunnel.abort();
    co_return;
  }
  record.port = *port;
  auto rule = rules->hosts.match(*host, *port);
  if (!rule) {
    finish("host-not-allowed");
    tunnel.abort();
    co_return;
  }

  // 3. Where to: the route's destination (weighted), its STATIC addresses as written or
  //    DNS answers from the rules' DNS server (c-ares blocks, so on the worker pool),
  //    each answer judged by the address guard.
  const UpstreamDestination destination = pickDestination(rules->config.routeFor(*rule, *host, *port));
  UpstreamTargets targets = co_await upstreamTargets(
      *rules, destination, "peer=" + record.peerAddress + " identity=" + record.identity + " sni=" + record.sni);
  record.dns = targets.dnsTime;
  if (!targets.failure.empty()) {
    finish(targets.failure);
    tunnel.abort();
    co_return;
  }

  // 4. Connect, trying each address in turn within one deadline.
  tcp::socket upstream(executor);
  std::string failure = "upstream-connect-failed";
  const auto connectStarted = AccessReport::Clock::now();
  {
    Deadline deadline(executor, rules->gateway.upstreamConnectTimeout, [&upstream] {
      boost::system::error_code ignored;
      upstream.cancel(ignored);
    });
    for (const IpAddress& address : targets.addresses) {
      tcp::endpoint endpoint(toAsio(address), destination.port);
      record.upstream =
          (address.isV6 ? "[" + formatIp(address) + "]" : formatIp(address)) + ":" + std::to_string(destination.port);
      boost::system::error_code ignored;
      upstream.close(ignored);
      // Marked, so that a redirect enrolled on the egress node's own cgroups (whose agent
      // trusts this namespace) cannot send the gateway's dial back into sluice.
      ec = openMarkedSocket(upstream, endpoint.protocol(), rules->gateway.socketMark);
      if (!ec) co_await upstream.async_connect(endpoint, asio::redirect_error(use_awaitable, ec));
      if (!ec) {
        failure.clear();
        break;
      }
      failure = deadline.expired() ? "upstream-connect-timeout" : "upstream-connect:" + ec.message();
      if (deadline.expired()) break;
    }
  }
  record.upstreamConnect = AccessReport::Clock::now() - connectStarted;
  if (!failure.empty()) {
    finish(failure);
    tunnel.abort();
    co_return;
  }
  upstream.set_option(tcp::no_delay(true), ec);

  // 5. Relay: agent -> origin is "up".
  TcpStream origin(std::move(upstream));
  RelayResult relayed = co_await relayBoth(tunnel, origin, rules->gateway.idleTimeout);
  finish(relayed.outcome(), relayed.bytesAtoB, relayed.bytesBtoA);
}

}  // namespace sluice
