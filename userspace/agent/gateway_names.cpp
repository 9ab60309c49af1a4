#include "gateway_names.h"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "spawn.h"

namespace sluice {

using boost::system::error_code;

GatewayNames::GatewayNames(asio::io_context& io, std::function<bool(const GatewayAddresses&)> changed)
    : io_(io), changed_(std::move(changed)), timer_(io) {}

void GatewayNames::setTargets(const std::vector<GatewayTarget>& targets, std::chrono::milliseconds interval) {
  interval_ = interval;
  std::vector<std::string> names;
  for (const auto& target : targets) {
    error_code ec;
    asio::ip::make_address(target.host, ec);
    if (ec && std::find(names.begin(), names.end(), target.host) == names.end()) names.push_back(target.host);
  }
  std::erase_if(byName_,
                [&](auto& entry) { return std::find(names.begin(), names.end(), entry.first) == names.end(); });
  names_ = std::move(names);
  timer_.cancel();  // ask now
}

void GatewayNames::start() {
  if (started_) return;
  started_ = true;
  asio::co_spawn(io_, loop(), logEscapedException("gateway names"));
}

void GatewayNames::stop() {
  stopped_ = true;
  timer_.cancel();
}

awaitable<void> GatewayNames::loop() {
  while (!stopped_) {
    co_await resolveAll();
    if (stopped_) break;
    timer_.expires_after(interval_);
    error_code ec;
    co_await timer_.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

awaitable<void> GatewayNames::resolveAll() {
  auto executor = co_await asio::this_coro::executor;
  const std::vector<std::string> names = names_;  // setTargets may change names_ while we wait
  for (const auto& name : names) {
    tcp::resolver resolver(executor);
    error_code ec;
    auto results = co_await resolver.async_resolve(name, "", asio::redirect_error(use_awaitable, ec));
    if (stopped_) co_return;
    if (ec || results.empty()) {
      spdlog::warn("gateway name={} result=resolve-failed:{} kept={}", name, ec ? ec.message() : "no addresses",
                   byName_[name].v4.size() + byName_[name].v6.size());
      continue;
    }
    GatewayAddresses addresses;
    for (const auto& entry : results) {
      auto address = entry.endpoint().address();
      if (address.is_v6() && address.to_v6().is_v4_mapped()) {
        address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
      }
      if (address.is_v4()) {
        addresses.v4.insert(htonl(address.to_v4().to_uint()));
      } else {
        auto bytes = address.to_v6().to_bytes();
        Ipv6Address v6;
        std::memcpy(v6.data(), bytes.data(), 16);
        addresses.v6.insert(v6);
      }
    }
    if (std::find(names_.begin(), names_.end(), name) != names_.end()) byName_[name] = std::move(addresses);
  }
  GatewayAddresses all;
  for (const auto& [name, addresses] : byName_) {
    all.v4.insert(addresses.v4.begin(), addresses.v4.end());
    all.v6.insert(addresses.v6.begin(), addresses.v6.end());
  }
  if (all != current_) {
    if (!changed_(all)) co_return;  // the pools keep the addresses the bypass still holds
    current_ = std::move(all);
    spdlog::info("gateway names={} bypass_v4={} bypass_v6={} result=applied", names_.size(), current_.v4.size(),
                 current_.v6.size());
  }
  std::map<std::string, std::vector<asio::ip::address>> byName;
  for (const auto& [name, addresses] : byName_) {
    auto& out = byName[name];
    for (uint32_t v4 : addresses.v4) out.push_back(asio::ip::address_v4(ntohl(v4)));
    for (const auto& v6 : addresses.v6) {
      asio::ip::address_v6::bytes_type bytes;
      std::memcpy(bytes.data(), v6.data(), 16);
      out.push_back(asio::ip::address_v6(bytes));
    }
  }
  if (byName != handedOut_ && resolved_) {
    handedOut_ = std::move(byName);
    resolved_(handedOut_);
  }
}

}  // namespace sluice
