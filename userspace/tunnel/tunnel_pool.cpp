#include "tunnel_pool.h"

#include <netinet/tcp.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "marked_socket.h"
#include "net_address.h"
#include "spawn.h"
#include "tls_context.h"

namespace sluice {

using Clock = std::chrono::steady_clock;
using boost::system::error_code;

namespace {

constexpr auto kTick = std::chrono::milliseconds(100);
constexpr auto kWaitStep = std::chrono::milliseconds(5);

std::string label(const tcp::endpoint& endpoint) {
  const auto& a = endpoint.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(endpoint.port());
}

}  // namespace

TunnelPool::TunnelPool(asio::io_context& io, std::function<std::shared_ptr<SSL_CTX>()> context)
    : io_(io), context_(std::move(context)), tickTimer_(io) {}

TunnelPool::~TunnelPool() {
  *alive_ = false;
  stop();
}

void TunnelPool::configure(const TunnelPoolSettings& settings) {
  if (started_ && settings == settings_) return;
  settings_ = settings;
  ++generation_;
  applyEndpoints();
  if (!started_) {
    started_ = true;
    asio::co_spawn(io_, maintain(), logEscapedException("tunnel pool"));
  }
}

void TunnelPool::stop() {
  stopped_ = true;
  tickTimer_.cancel();
  for (auto& gateway : gateways_) {
    for (auto& connection : gateway->connections) connection->close("agent-stopping");
  }
}

void TunnelPool::closeConnections() {
  draining_ = true;
  for (auto& gateway : gateways_) {
    for (auto& connection : gateway->connections) {
      if (connection->isOpen()) connection->drain();
    }
  }
}

namespace {

bool isName(const GatewayTarget& target) {
  error_code ec;
  asio::ip::make_address(target.host, ec);
  return bool(ec);
}

}  // namespace

void TunnelPool::setResolvedNames(ResolvedNames names) {
  resolvedNames_ = std::move(names);
  applyEndpoints();
}

void TunnelPool::applyEndpoints() {
  std::vector<tcp::endpoint> endpoints;
  for (const auto& target : settings_.gateways) {
    if (!isName(target)) {
      endpoints.emplace_back(asio::ip::make_address(target.host), target.port);
      continue;
    }
    auto it = resolvedNames_.find(target.host);
    if (it == resolvedNames_.end()) continue;
    for (const auto& address : it->second) endpoints.emplace_back(address, target.port);
  }
  for (auto& gateway : gateways_) gateway->listed = false;
  for (const auto& endpoint : endpoints) {
    auto it = std::find_if(gateways_.begin(), gateways_.end(), [&](auto& g) { return g->endpoint == endpoint; });
    if (it != gateways_.end()) {
      (*it)->listed = true;
      continue;
    }
    auto gateway = std::make_shared<Gateway>();
    gateway->endpoint = endpoint;
    gateway->label = label(endpoint);
    gateways_.push_back(std::move(gateway));
  }
}

std::shared_ptr<H2Connection> TunnelPool::usable(Gateway& gateway) const {
  std::shared_ptr<H2Connection> best;
  for (auto& connection : gateway.connections) {
    if (!connection->canOpen()) continue;
    if (!best || connection->streamCount() < best->streamCount()) best = connection;
  }
  return best;
}

size_t TunnelPool::healthyGateways(const std::set<std::string>& exclude) const {
  size_t n = 0;
  for (const auto& gateway : gateways_) {
    n += gateway->listed && !exclude.contains(gateway->label) && usable(*gateway) != nullptr;
  }
  return n;
}

void TunnelPool::tick() {
  const auto now = Clock::now();
  const std::shared_ptr<SSL_CTX> current = context_();
  for (auto& gateway : gateways_) {
    auto& connections = gateway->connections;
    for (auto& connection : connections) {
      auto made = madeWith_.find(connection.get());
      bool stale = !gateway->listed || made == madeWith_.end() || made->second.first != current ||
                   made->second.second != generation_;
      if (stale && connection->isOpen() && !connection->draining()) connection->drain();
    }
    std::erase_if(connections, [](auto& c) { return !c->isOpen(); });
    if (!gateway->listed) continue;
    size_t fresh = gateway->connecting;
    for (auto& connection : connections) fresh += connection->isOpen() && !connection->draining();
    // A failing gateway gets one attempt at a time, after its backoff.
    size_t want =
        gateway->failures ? std::min<size_t>(1, settings_.connectionsPerGateway) : settings_.connectionsPerGateway;
    while (fresh < want && now >= gateway->retryAt && !stopped_ && !draining_) {
      ++gateway->connecting;
      ++fresh;
      asio::co_spawn(io_, connect(gateway, generation_), logEscapedException("tunnel connect"));
    }
  }
  std::erase_if(gateways_, [](auto& g) { return !g->listed && g->connections.empty() && g->connecting == 0; });
  reportCounts();
}

void TunnelPool::reportCounts() {
  if (!metrics_) return;
  std::map<std::pair<std::string, TunnelState>, int64_t> now;
  for (const auto& gateway : gateways_) {
    now[{gateway->label, TunnelState::Connecting}] += static_cast<int64_t>(gateway->connecting);
    for (const auto& connection : gateway->connections) {
      if (!connection->isOpen()) continue;
      now[{gateway->label, connection->draining() ? TunnelState::Draining : TunnelState::Ready}] += 1;
    }
    now[{gateway->label, TunnelState::Failed}] += gateway->failures > 0 ? 1 : 0;
  }
  for (auto& [key, count] : reported_) {
    if (!now.contains(key)) now[key] = 0;  // a gateway gone: take its counts back
  }
  for (const auto& [key, count] : now) {
    int64_t& last = reported_[key];
    if (count != last) metrics_->addTunnelConnections(key.first, key.second, count - last);
    last = count;
  }
}

awaitable<void> TunnelPool::maintain() {
  auto alive = alive_;
  while (*alive && !stopped_) {
    tick();
    tickTimer_.expires_after(kTick);
    error_code ec;
    co_await tickTimer_.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

awaitable<void> TunnelPool::connect(std::shared_ptr<Gateway> gateway, uint64_t generation) {
  auto alive = alive_;
  const TunnelPoolSettings settings = settings_;
  const std::shared_ptr<SSL_CTX> context = context_();
  auto executor = co_await asio::this_coro::executor;
  const auto dialed = Clock::now();
  tcp::socket socket(executor);
  std::unique_ptr<TlsStream> tls;
  std::string failure;
  error_code ec = openMarkedSocket(socket, gateway->endpoint.protocol(), settings.socketMark);
  if (ec) {
    failure = "local-socket-error:" + ec.message();
  } else {
    Deadline deadline(executor, settings.connectTimeout, [&socket, &tls] {
      error_code ignored;
      if (tls) {
        tls->socket().cancel(ignored);
      } else {
        socket.cancel(ignored);
      }
    });
    co_await socket.async_connect(gateway->endpoint, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      failure = deadline.expired() ? "gateway-connect-timeout" : "gateway-connect:" + ec.message();
    } else {
      socket.set_option(tcp::no_delay(true), ec);
      tls = std::make_unique<TlsStream>(std::move(socket), context.get(), TlsRole::Client);
      if (!settings.serverName.empty()) SSL_set_tlsext_host_name(tls->ssl(), settings.serverName.c_str());
      static const unsigned char kH2[] = {2, 'h', '2'};
      SSL_set_alpn_protos(tls->ssl(), kH2, sizeof(kH2));
      ec = co_await tls->handshake();
      const unsigned char* alpn = nullptr;
      unsigned int alpnLength = 0;
      if (!ec) SSL_get0_alpn_selected(tls->ssl(), &alpn, &alpnLength);
      if (ec) {
        failure = deadline.expired() ? "gateway-handshake-timeout" : "gateway-handshake:" + tls->lastError();
      } else if (peerSpiffeId(tls->ssl()) != settings.identity) {
        failure = "gateway-identity-mismatch:" + peerSpiffeId(tls->ssl()).value_or("none");
      } else if (std::string_view(reinterpret_cast<const char*>(alpn), alpnLength) != "h2") {
        failure = "gateway-alpn:not-h2";
      }
    }
  }
  if (!*alive) co_return;
  --gateway->connecting;
  if (!failure.empty()) {
    if (tls) tls->abort();
    ++gateway->failures;
    // Exponential backoff with full jitter: between half and all of min * 2^(failures-1).
    auto ceiling = settings.backoffMin * (1u << std::min(gateway->failures - 1, 16u));
    ceiling = std::min(ceiling, std::chrono::duration_cast<decltype(ceiling)>(settings.backoffMax));
    auto delay = std::chrono::milliseconds(
        std::uniform_int_distribution<long>(ceiling.count() / 2, std::max<long>(1, ceiling.count()))(random_));
    gateway->retryAt = Clock::now() + delay;
    gateway->lastError = failure;
    spdlog::warn("tunnel gateway={} result={} failures={} retry_in_ms={}", gateway->label, failure, gateway->failures,
                 delay.count());
    co_return;
  }
  if (metrics_) metrics_->observeTunnelHandshake(Clock::now() - dialed);
  if (gateway->failures) spdlog::info("tunnel gateway={} result=recovered after={}", gateway->label, gateway->failures);
  gateway->failures = 0;
  gateway->lastError.clear();
  auto connection = std::make_shared<H2Connection>(std::move(tls), H2Role::Client, settings.h2);
  madeWith_[connection.get()] = {context, generation};
  gateway->connections.push_back(connection);
  if (stopped_) connection->close("agent-stopping");
  spdlog::debug("tunnel gateway={} result=open", gateway->label);
  asio::co_spawn(executor, runConnection(connection), logEscapedException("tunnel connection"));
}

awaitable<void> TunnelPool::runConnection(std::shared_ptr<H2Connection> connection) {
  auto alive = alive_;
  ActiveFlows::Flow tracked = tracked_ ? tracked_->track(io_.get_executor()) : ActiveFlows::Flow();
  co_await connection->run();
  tracked.end();
  if (!*alive) co_return;
  madeWith_.erase(connection.get());
  const std::string& reason = connection->closeReason();
  if (reason != "drained" && reason != "agent-stopping") {
    for (auto& gateway : gateways_) {
      if (std::find(gateway->connections.begin(), gateway->connections.end(), connection) ==
          gateway->connections.end()) {
        continue;
      }
      spdlog::warn("tunnel gateway={} result=lost:{}", gateway->label, reason);
      gateway->lastError = "tunnel-lost:" + reason;
    }
  }
}

awaitable<TunnelPool::Opened> TunnelPool::open(const std::string& authority, const std::string& connectionId,
                                               const std::set<std::string>& exclude,
                                               const std::function<bool()>& giveUp) {
  auto executor = co_await asio::this_coro::executor;
  const auto deadline = Clock::now() + settings_.connectTimeout;
  asio::steady_timer wait(executor);
  while (true) {
    // Healthy gateways in turn; those already tried for this flow only if no other is up.
    for (int pass = 0; pass < 2; ++pass) {
      for (size_t i = 0; i < gateways_.size(); ++i) {
        auto& gateway = *gateways_[(next_ + i) % gateways_.size()];
        if (!gateway.listed || (pass == 0 && exclude.contains(gateway.label))) continue;
        auto connection = usable(gateway);
        if (!connection) continue;
        auto stream = connection->openConnect(authority, connectionId);
        if (!stream) continue;
        next_ = (next_ + i + 1) % gateways_.size();
        co_return Opened{std::move(stream), gateway.label, {}};
      }
    }
    // None up. Wait while a gateway not known to be failing is being connected; fail at
    // once when every one's last attempt failed (the app is reset rather than left
    // hanging; the pool keeps trying in the background).
    // A name not answered yet (the agent has just started) counts as being connected.
    const bool awaitingNames = std::any_of(settings_.gateways.begin(), settings_.gateways.end(),
                                           [&](auto& t) { return isName(t) && !resolvedNames_.contains(t.host); });
    bool pending = (awaitingNames && gateways_.empty()) || std::any_of(gateways_.begin(), gateways_.end(), [](auto& g) {
                     return g->listed && g->failures == 0;
                   });
    if (giveUp && giveUp()) co_return Opened{nullptr, "-", "given-up"};
    if (!pending || Clock::now() >= deadline || stopped_) {
      std::string why;
      for (auto& g : gateways_) why += (why.empty() ? "" : ",") + g->label + "=" + g->lastError;
      co_return Opened{nullptr, "-", "no-gateway-available:" + (why.empty() ? std::string("none") : why)};
    }
    tick();
    wait.expires_after(kWaitStep);
    error_code ec;
    co_await wait.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

}  // namespace sluice
