#include "forwarder.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <set>

#include "asio_address.h"
#include "byte_stream.h"
#include "client_hello.h"
#include "fd_limits.h"
#include "flow_report.h"
#include "gateway_health.h"
#include "marked_socket.h"
#include "rate_limiter.h"
#include "relay.h"
#include "retry_policy.h"
#include "spawn.h"

namespace sluice {
namespace {

void resetAndClose(tcp::socket& socket) {
  boost::system::error_code ignored;
  // Linger 0 turns close into a RST: the app sees its connection refused at once
  // instead of a clean EOF that could look like an empty response.
  socket.set_option(asio::socket_base::linger(true, 0), ignored);
  socket.close(ignored);
}

// The first read of a ClientHello takes at most this much; the buffer grows (doubling,
// up to agent.maxClientHelloBytes) only for a hello that needs it, so a connection that
// sends nothing holds almost nothing.
constexpr size_t kFirstHelloBuffer = 1536;

// What a read without waiting found: bytes, or why the flow ends (the peer closed or failed).
struct FirstRead {
  size_t bytes = 0;
  std::optional<std::string> failure;
  bool failed() const { return failure.has_value(); }
};

// One recv that does not wait, into `buffer` sized to `size`. Nothing there yet: nullopt,
// and `buffer` is given back empty (an app that connects and says nothing holds no buffer).
std::optional<FirstRead> tryFirstRead(tcp::socket& socket, std::vector<uint8_t>& buffer, size_t size) {
  buffer.resize(size);
  ssize_t n;
  do {
    n = ::recv(socket.native_handle(), buffer.data(), buffer.size(), MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n > 0) return FirstRead{static_cast<size_t>(n), std::nullopt};
  if (n == 0) return FirstRead{0, "client-closed-before-hello"};
  const int error = errno;
  std::vector<uint8_t>().swap(buffer);
  if (error == EAGAIN || error == EWOULDBLOCK) return std::nullopt;
  return FirstRead{0,
                   "client-read-error:" + boost::system::error_code(error, boost::system::system_category()).message()};
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
      acceptor6_(io),
      pool_(io, [&certificates] { return certificates.context(); }),
      limits_(std::make_shared<ConnectionLimits>(rules_->agent.maxConnections, rules_->agent.maxConnectionsPerPod)) {
  configurePool();
}

static void bindAndListen(tcp::acceptor& acceptor, const tcp::endpoint& endpoint) {
  acceptor.open(endpoint.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  // Every worker binds the same address; the kernel spreads new connections over them.
  acceptor.set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true));
  if (endpoint.address().is_v6()) acceptor.set_option(asio::ip::v6_only(true));
  // Accepted sockets inherit TCP_NODELAY from the listener: no setsockopt per flow.
  acceptor.set_option(tcp::no_delay(true));
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

void Forwarder::stopAccepting() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  acceptor6_.close(ignored);
  pool_.drain();
}

void Forwarder::stop() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  acceptor6_.close(ignored);
  pool_.stop();
}

awaitable<void> Forwarder::acceptLoop(tcp::acceptor& acceptor) {
  return acceptConnections(
      acceptor, [this](tcp::socket client, tcp::endpoint peer) { return handle(TcpStream(std::move(client)), peer); },
      "agent connection");
}

void Forwarder::deny(tcp::socket& client, FlowReport& flow, std::string reason) {
  flow.decision = FlowDecision::Denied;
  flow.reason = std::move(reason);
  resetAndClose(client);
  reporter_.report(flow);
}

// Steps 1 and the caps, without waiting: no coroutine frame of its own. Denies (and
// reports) itself when the flow may not go on.
// `peer`: from accept4 itself, no getpeername per flow.
ConnectionLimits::Slot Forwarder::admitPeer(tcp::socket& client, FlowReport& flow, const tcp::endpoint& peer) {
  flow.client = peer;

  // 1. Where did the app want to go? Published by sockops, keyed by the app's source.
  std::optional<sl_orig_dst> original = datapath_.takeOriginalDestination(kernelKey(peer));
  if (!original) {
    // Not redirected by us (someone dialled the agent directly), or the hand-off map
    // was full: there is nowhere safe to send it.
    deny(client, flow, "no-original-destination");
    return {};
  }
  flow.destination = fromKernel(original->dst);
  flow.cgroupId = original->cgroup_id;
  flow.pod = pods_.podUid(flow.cgroupId).value_or("-");
  // Caps: in all, and per pod (cgroup), so one pod cannot take the node's capacity.
  auto slot = limits_->acquire(std::to_string(flow.cgroupId));
  if (!slot.admitted()) {
    deny(client, flow,
         slot.verdict() == ConnectionLimits::Verdict::OverKey ? "pod-connection-limit" : "connection-limit");
  }
  return slot;
}

// Steps 2 and 3 in a coroutine of their own, so that their locals (the parser's result,
// the deadline, the read loop's temporaries) are freed before the flow is relayed: only
// handle()'s frame lives as long as the connection.
awaitable<Forwarder::Admission> Forwarder::readHello(tcp::socket& client, const AgentRules& rules, FlowReport& flow,
                                                     const ActiveFlows::Flow& active) {
  const AgentConfig& agent = rules.agent;
  auto executor = co_await asio::this_coro::executor;
  Admission out;
  // 2. Read the ClientHello (possibly several segments and records) under a deadline.
  //    A connection that has sent nothing holds no buffer while it waits.
  std::vector<uint8_t>& peeked = out.hello;
  size_t have = 0;
  HelloResult hello;
  // The app sends its hello right after connect(), so it is nearly always there by now:
  // take it without a readiness wait, a deadline timer or a pass through the event loop.
  if (auto first = tryFirstRead(client, peeked, std::min<size_t>(kFirstHelloBuffer, agent.maxClientHelloBytes))) {
    if (first->failed()) {
      deny(client, flow, *first->failure);
      co_return out;
    }
    have = first->bytes;
    hello = parseClientHello(std::span<const uint8_t>(peeked.data(), have), agent.maxClientHelloBytes);
  }
  if (hello.status == HelloStatus::NeedMore) {
    boost::system::error_code ec;
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
        deny(client, flow,
             active.resetByDrain()    ? "drain-deadline"
             : deadline.expired()     ? "client-hello-timeout"
             : ec == asio::error::eof ? "client-closed-before-hello"
                                      : "client-read-error:" + ec.message());
        co_return out;
      }
      have += n;
      hello = parseClientHello(std::span<const uint8_t>(peeked.data(), have), agent.maxClientHelloBytes);
    }
  }
  peeked.resize(have);  // from here on, size() is the count of bytes read
  flow.clientHelloWait = FlowReport::Clock::now() - flow.started;
  if (hello.status != HelloStatus::Done) {
    deny(client, flow,
         std::string(hello.status == HelloStatus::NotTls ? "not-tls" : "bad-client-hello") + ":" + hello.error);
    co_return out;
  }
  // ECH: the name in the clear is only the outer, public one; the host the app reaches
  // is encrypted. Refused unless the rules say to decide by the outer name.
  if (hello.encryptedClientHello && agent.echPolicy == EchPolicy::Deny) {
    if (hello.serverName) flow.sni = *hello.serverName;
    deny(client, flow, "ech-refused");
    co_return out;
  }
  if (!hello.serverName) {
    deny(client, flow, "no-sni");
    co_return out;
  }
  flow.sni = *hello.serverName;

  // 3. Policy: deny by default.
  auto host = normalizeHostName(flow.sni);
  if (!host) {
    deny(client, flow, "invalid-sni");
    co_return out;
  }
  auto rule = rules.hosts.match(*host, flow.destination.port());
  if (!rule) {
    if (rules.outbound == OutboundPolicy::AllowAny) {
      out.next = Admission::Next::Direct;
      co_return out;
    }
    deny(client, flow, "host-not-allowed");
    co_return out;
  }
  flow.rule = *rule;
  // :authority = host:port (the gateway dials the name, never the app's address).
  out.authority = *host + ":" + std::to_string(flow.destination.port());
  out.next = Admission::Next::Tunnel;
  co_return out;
}

// One connection from accept to its report. Its frame is what an idle relayed flow
// holds for its whole life (with relayBoth's): keep its locals few and small, and do
// the inspection in readHello().
awaitable<void> Forwarder::handle(TcpStream app, tcp::endpoint peer) {
  tcp::socket& client = app.socket();
  const std::shared_ptr<const AgentRules> rules = rules_;
  FlowReport flow;
  flow.connectionId = newConnectionId();
  reporter_.started();
  // Until it ends, a drain waits for this flow; at the drain deadline it is reset.
  ActiveFlows::Flow active = flows_ ? flows_->track(client.get_executor()) : ActiveFlows::Flow();
  active.onReset([&app] { resetAndClose(app.socket()); });
  // Every way out of this function: reset the app (unless relayed cleanly), report once.
  const ConnectionLimits::Slot slot = admitPeer(client, flow, peer);
  if (!slot.admitted()) co_return;
  Admission admission = co_await readHello(client, *rules, flow, active);
  if (admission.next == Admission::Next::Direct) {
    co_await passDirect(app, admission.hello, *rules, flow, active);
    co_return;
  }
  if (admission.next != Admission::Next::Tunnel) co_return;

  // 4. A CONNECT stream on a pooled tunnel to a gateway; the hello rides right behind.
  flow.decision = FlowDecision::Failed;
  std::string failure;
  int retries = 0;
  const auto opening = FlowReport::Clock::now();
  const uint64_t helloBytes = admission.hello.size();
  std::shared_ptr<TunnelStream> stream = co_await openTunnel(client, *rules, admission.authority, flow.connectionId,
                                                             admission.hello, flow.gateway, failure, retries, active);
  // Sent: the hello's buffer and the authority go now, not at the end of the flow (swap:
  // assigning an empty one would keep the capacity).
  std::vector<uint8_t>().swap(admission.hello);
  std::string().swap(admission.authority);
  flow.retries = retries;
  if (stream && active.resetByDrain()) {  // the origin's first byte and the reset came in one turn
    stream->abort();
    stream.reset();
    failure = "drain-deadline";
  }
  // A drain's reset says nothing about the gateway.
  if (health_ && !active.resetByDrain()) {
    health_->recordTunnel(stream != nullptr || failure.starts_with("gateway-refused"), failure);
  }
  if (!stream) {
    flow.reason = failure;
    resetAndClose(client);
    reporter_.report(flow);
    co_return;
  }
  flow.gatewayConnect = FlowReport::Clock::now() - opening;  // CONNECT to the origin's first byte or answer
  flow.decision = FlowDecision::Allowed;
  flow.tunnel = "h2";

  // 5. The app's bytes, unchanged, both ways; FIN as END_STREAM, RST as RST_STREAM.
  active.onReset([&app, &stream] {
    resetAndClose(app.socket());
    stream->abort();
  });
  RelayResult relayed = co_await relayBoth(app, *stream, rules->agent.idleTimeout);
  active.onReset(nullptr);
  flow.reason = relayed.outcome();
  if (stream->isReset() && !relayed.idleTimeout) flow.reason = "reset:" + stream->resetReason();
  if (active.resetByDrain()) flow.reason = "drain-deadline";
  if (stream->status() != 0 && stream->status() != 200) {
    flow.decision = FlowDecision::Failed;
    flow.reason = "gateway-refused:" + (stream->result().empty() ? std::to_string(stream->status()) : stream->result());
  }
  flow.up = helloBytes + relayed.bytesAtoB;
  flow.down = relayed.bytesBtoA;
  if (relayed.bytesBtoA) flow.firstByte = relayed.firstByteBtoA - flow.started;
  if (!relayed.clean()) {
    resetAndClose(app.socket());
    stream->abort();
  }
  reporter_.report(flow);
}

void Forwarder::setRules(std::shared_ptr<const AgentRules> rules) {
  rules_ = std::move(rules);
  configurePool();
}

void Forwarder::configurePool() {
  const AgentConfig& agent = rules_->agent;
  TunnelPoolSettings settings;
  settings.gateways = agent.gateways;
  settings.identity = agent.gatewayIdentity;
  settings.serverName = agent.gatewayService;
  settings.socketMark = socketMark_ ? agent.socketMark : 0;
  settings.connectionsPerGateway = agent.gatewayConnections;
  settings.connectTimeout = agent.gatewayConnectTimeout;
  settings.h2.pingInterval = agent.gatewayPingInterval;
  settings.h2.pingTimeout = agent.gatewayPingTimeout;
  pool_.configure(settings);
}

// Writes the first bytes and waits for the origin's first byte (or its end). A stream
// that fails before then because of the tunnel (lost, refused, no gateway answer) is
// tried again on another gateway with the same bytes: the app sees nothing of it.
namespace {

// Phase 1 ends early when the app has more to say (bytes or FIN) before the origin spoke:
// its stream is then relayed as it is, without the chance of a retry. What the app
// watch's handler touches, shared with it: it may run after the attempt is over.
struct AppWatch {
  std::shared_ptr<TunnelStream> stream;
  bool appReady = false;
  bool done = false;
};

// A plain handler, not a coroutine: no spawn, and nothing to wait for at the end (a
// cancelled wait's handler finds `done` and only lets go of the watch). A readiness wait
// alone is not enough: the hello may have been taken without a wait (readHello), and the
// readiness event of its arrival, still queued, ends a wait at once. So the socket itself
// is asked, by poll(), which takes nothing: not the bytes, and not a pending reset (a
// recv, even MSG_PEEK, would clear that error and the relay would then read a clean EOF).
void watchApp(tcp::socket& app, std::shared_ptr<AppWatch> watch) {
  app.async_wait(tcp::socket::wait_read, [&app, watch](const boost::system::error_code& ec) {
    if (watch->done || ec) return;  // `app` is only touched while the attempt runs
    pollfd ready{app.native_handle(), POLLIN | POLLRDHUP, 0};
    if (::poll(&ready, 1, 0) == 0) {
      watchApp(app, watch);
      return;
    }
    watch->appReady = true;
    if (watch->stream) watch->stream->interruptWaits();
  });
}

}  // namespace

awaitable<std::shared_ptr<TunnelStream>> Forwarder::openTunnel(tcp::socket& app, const AgentRules& rules,
                                                               const std::string& authority,
                                                               const std::string& connectionId,
                                                               std::span<const uint8_t> firstBytes,
                                                               std::string& gateway, std::string& failure, int& retries,
                                                               ActiveFlows::Flow& active) {
  auto watch = std::make_shared<AppWatch>();
  // Set on every way out, an exception's too: after it the handler leaves `app` alone.
  struct EndWatch {
    AppWatch& watch;
    ~EndWatch() { watch.done = true; }
  } endWatch{*watch};
  watchApp(app, watch);
  // The drain's deadline ends the attempt too: the stream being tried is reset, and
  // tryGateways sees the flow's reset and tries no other gateway. Otherwise a flow
  // waiting for its origin's first byte would outlast the drain (up to the idle timeout).
  active.onReset([&app, watch] {
    resetAndClose(app);
    if (watch->stream) watch->stream->abort();
  });
  std::shared_ptr<TunnelStream> result = co_await tryGateways(rules, authority, connectionId, firstBytes, gateway,
                                                              failure, retries, watch->stream, watch->appReady, active);
  watch->done = true;
  watch->stream.reset();
  boost::system::error_code ignored;
  app.cancel(ignored);  // before the relay's own waits on the app socket
  if (result) result->resumeWaits();
  co_return result;
}

awaitable<std::shared_ptr<TunnelStream>> Forwarder::tryGateways(const AgentRules& rules, const std::string& authority,
                                                                const std::string& connectionId,
                                                                std::span<const uint8_t> firstBytes,
                                                                std::string& gateway, std::string& failure,
                                                                int& retries, std::shared_ptr<TunnelStream>& watched,
                                                                bool& appReady, const ActiveFlows::Flow& active) {
  auto executor = co_await asio::this_coro::executor;
  const AgentConfig& agent = rules.agent;
  std::set<std::string> tried;
  // Bounds: one try per gateway and one more (a lost tunnel may be re-made to the same
  // gateway when it is the only one), and every try started within twice the response
  // timeout of the first.
  const int attempts =
      static_cast<int>(std::max<size_t>(2, std::max(agent.gateways.size(), pool_.healthyGateways()) + 1));
  const auto budgetEnd = std::chrono::steady_clock::now() + 2 * agent.gatewayResponseTimeout;
  // A drain's reset also ends the wait for a tunnel when none is up yet (named: a
  // temporary inside the co_await is what g++ 12 mishandles, see ReceivedChunk).
  const std::function<bool()> drainReset = [&active] { return active.resetByDrain(); };
  for (int attempt = 0; attempt < attempts; ++attempt) {
    TunnelPool::Opened opened = co_await pool_.open(authority, connectionId, tried, drainReset);
    if (active.resetByDrain() || opened.failure == "given-up") {
      if (opened.stream) opened.stream->abort();
      failure = "drain-deadline";
      co_return nullptr;
    }
    if (!opened.stream) {
      failure = opened.failure;
      co_return nullptr;
    }
    gateway = opened.gateway;
    tried.insert(opened.gateway);
    std::shared_ptr<TunnelStream> stream = std::move(opened.stream);
    watched = stream;
    if (appReady) stream->interruptWaits();
    bool retry = false;
    {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(budgetEnd - std::chrono::steady_clock::now());
      Deadline deadline(executor, std::clamp(left, std::chrono::milliseconds(1), agent.gatewayResponseTimeout),
                        [&stream] { stream->abort(); });
      auto ec = co_await stream->writeAll(firstBytes);
      if (!ec) co_await stream->waitResponse();
      if (!ec && appReady && !stream->isReset()) co_return stream;  // the app spoke first: relay now
      if (deadline.expired()) {
        failure = "gateway-response-timeout";
        retry = true;
      } else if (ec || stream->status() == 0) {
        failure = "tunnel:" + (stream->isReset() ? stream->resetReason() : ec.message());
        retry = stream->tunnelLost() || stream->resetReason() == "refused-stream" || stream->status() == 0;
      } else if (stream->status() != 200) {
        // The gateway's own trouble (caps, DNS, its path to the origin) is tried once on
        // each other gateway that is up; its policy answers are final (retry_policy.h).
        failure = "gateway-refused:" + (stream->result().empty() ? std::to_string(stream->status()) : stream->result());
        retry = retryOnAnotherGateway(stream->status(), stream->result()) && pool_.healthyGateways(tried) > 0;
      } else {
        // Connected at the gateway: wait for the origin's first byte (or FIN/RST).
        Deadline firstByte(executor, agent.idleTimeout, [&stream] { stream->abort(); });
        co_await stream->waitReadable();
        if (stream->bytesReceived() > 0 || !stream->isReset()) co_return stream;
        failure = "tunnel:" + stream->resetReason();
        retry = stream->tunnelLost();
        if (!retry && !active.resetByDrain()) co_return stream;  // the origin reset: the relay passes it on
      }
    }
    stream->abort();
    if (active.resetByDrain()) {
      failure = "drain-deadline";
      co_return nullptr;
    }
    if (!retry || attempt + 1 == attempts || std::chrono::steady_clock::now() >= budgetEnd) co_return nullptr;
    ++retries;
    reporter_.retried(connectionId, gateway, failure);
  }
  co_return nullptr;
}

awaitable<void> Forwarder::passDirect(TcpStream& app, std::vector<uint8_t>& peeked, const AgentRules& rules,
                                      FlowReport& flow, ActiveFlows::Flow& active) {
  tcp::socket& client = app.socket();
  const size_t have = peeked.size();
  // The agent dials from the node's network namespace: the node's own addresses, its
  // loopback or the metadata service must not become reachable through a pass-through.
  const tcp::endpoint destination = flow.destination;
  if (auto refusal = rules.directGuard.check(fromAsio(destination.address()))) {
    flow.decision = FlowDecision::Denied;
    flow.reason = std::string("destination-refused:") + toString(*refusal);
    resetAndClose(client);
    reporter_.report(flow);
    co_return;
  }
  auto executor = co_await asio::this_coro::executor;
  boost::system::error_code ec;
  tcp::socket upstream(executor);
  active.onReset([&client, &upstream] {
    resetAndClose(client);
    resetAndClose(upstream);
  });
  ec = openMarkedSocket(upstream, destination.protocol(), socketMark_ ? rules.agent.socketMark : 0);
  std::string failure;
  if (ec) {
    failure = "local-socket-error:" + ec.message();
  } else {
    Deadline deadline(executor, rules.agent.directConnectTimeout, [&upstream] {
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
  TcpStream origin(std::move(upstream));
  active.onReset([&app, &origin] {
    resetAndClose(app.socket());
    origin.abort();
  });
  ec = co_await origin.writeAll(std::span<const uint8_t>(peeked.data(), have));
  std::vector<uint8_t>().swap(peeked);
  RelayResult relayed;
  if (!ec) relayed = co_await relayBoth(app, origin, rules.agent.idleTimeout);
  active.onReset(nullptr);
  flow.reason = ec ? "write:" + ec.message() : relayed.outcome();
  if (active.resetByDrain()) flow.reason = "drain-deadline";
  flow.up = have + relayed.bytesAtoB;
  flow.down = relayed.bytesBtoA;
  if (relayed.bytesBtoA) flow.firstByte = relayed.firstByteBtoA - flow.started;
  if (!relayed.clean() || ec) resetAndClose(app.socket());
  reporter_.report(flow);
}

}  // namespace sluice
