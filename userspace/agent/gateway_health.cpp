#include "gateway_health.h"

#include <spdlog/spdlog.h>

#include "marked_socket.h"
#include "spawn.h"

namespace sluice {
namespace {

std::string text(const tcp::endpoint& e) {
  return e.address().to_string() + ":" + std::to_string(e.port());
}

}  // namespace

GatewayHealth::GatewayHealth(asio::io_context& io, tcp::endpoint gateway, uint32_t socketMark)
    : io_(io), timer_(io), target_(std::move(gateway)), socketMark_(socketMark) {
  view_.gateway = text(target_);
}

void GatewayHealth::start() {
  asio::co_spawn(io_, probeLoop(), logEscapedException("gateway probe"));
}

void GatewayHealth::stop() {
  stopped_ = true;
  timer_.cancel();
}

void GatewayHealth::setTarget(tcp::endpoint gateway, uint32_t socketMark) {
  socketMark_ = socketMark;
  if (gateway == target_) return;
  target_ = std::move(gateway);
  std::lock_guard lock(mutex_);
  view_ = View{};
  view_.gateway = text(target_);
  reachable_ = false;
}

void GatewayHealth::recordTunnel(bool reachable, const std::string& error) {
  record(reachable, error);
}

void GatewayHealth::record(bool reachable, const std::string& error) {
  std::lock_guard lock(mutex_);
  const bool changed = !view_.known || view_.reachable != reachable;
  view_.known = true;
  view_.reachable = reachable;
  view_.consecutiveFailures = reachable ? 0 : view_.consecutiveFailures + 1;
  if (!reachable) view_.lastError = error;
  if (changed) {
    view_.lastChangeUnixSeconds =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    if (reachable) {
      spdlog::info("gateway {} reachable", view_.gateway);
    } else {
      spdlog::warn("gateway {} unreachable: {}", view_.gateway, error);
    }
  }
  reachable_ = reachable;
}

GatewayHealth::View GatewayHealth::view() const {
  std::lock_guard lock(mutex_);
  return view_;
}

awaitable<void> GatewayHealth::probeLoop() {
  auto executor = co_await asio::this_coro::executor;
  while (!stopped_) {
    tcp::socket probe(executor);
    boost::system::error_code ec = openMarkedSocket(probe, target_.protocol(), socketMark_);
    std::string error;
    if (ec) {
      error = "socket: " + ec.message();
    } else {
      Deadline deadline(executor, kProbeTimeout, [&probe] {
        boost::system::error_code ignored;
        probe.cancel(ignored);
      });
      co_await probe.async_connect(target_, asio::redirect_error(use_awaitable, ec));
      if (ec) error = deadline.expired() ? "connect timeout" : "connect: " + ec.message();
    }
    boost::system::error_code ignored;
    probe.close(ignored);
    if (!stopped_) record(error.empty(), error);
    timer_.expires_after(kInterval);
    co_await timer_.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

}  // namespace sluice
