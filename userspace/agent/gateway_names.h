// The agent's one resolver of its gateway names. Their addresses join the kernel's bypass
// first (they must never be redirected, the same as gateways written as addresses), and
// only then go to the tunnel pools, so no pool dials an address the bypass lacks. Asked
// of the system resolver (getaddrinfo) at start and every agent.gateway.resolveIntervalMs
// (getaddrinfo gives no TTL); a name that fails to resolve keeps its last addresses. Runs
// on the control thread.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "async.h"
#include "config.h"
#include "datapath_state.h"

namespace sluice {

class GatewayNames {
 public:
  // `changed`: the union of every name's addresses, when it differs from the last one
  // (it should make the kernel maps say it, all or nothing, and return false if it could not).
  GatewayNames(asio::io_context& io, std::function<bool(const GatewayAddresses&)> changed);
  // The gateways of the rules in force (addresses among them are ignored) and how often
  // to ask; asks at once.
  void setTargets(const std::vector<GatewayTarget>& targets, std::chrono::milliseconds interval);
  // `resolved`: every name's addresses, after the bypass took them, when they differ from
  // the last ones handed out. Set before start().
  void onResolved(std::function<void(const std::map<std::string, std::vector<asio::ip::address>>&)> resolved) {
    resolved_ = std::move(resolved);
  }
  void start();
  void stop();
  const GatewayAddresses& current() const { return current_; }

 private:
  awaitable<void> loop();
  awaitable<void> resolveAll();

  asio::io_context& io_;
  std::chrono::milliseconds interval_{30000};
  std::function<bool(const GatewayAddresses&)> changed_;
  std::function<void(const std::map<std::string, std::vector<asio::ip::address>>&)> resolved_;
  std::map<std::string, std::vector<asio::ip::address>> handedOut_;
  std::vector<std::string> names_;
  std::map<std::string, GatewayAddresses> byName_;
  GatewayAddresses current_;
  asio::steady_timer timer_;
  bool stopped_ = false;
  bool started_ = false;
};

}  // namespace sluice
