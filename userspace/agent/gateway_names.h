// The addresses the agent's gateway names resolve to, for the kernel's bypass: the pool
// dials whatever a name resolves to, and those addresses must never be redirected, the
// same as gateways written as addresses. Asked of the system resolver (getaddrinfo, as
// the pool asks) at start and every agent.gateway.resolveIntervalMs (getaddrinfo gives no
// TTL); a name that
// fails to resolve keeps its last addresses. Runs on the control thread.
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
  void start();
  void stop();
  const GatewayAddresses& current() const { return current_; }

 private:
  awaitable<void> loop();
  awaitable<void> resolveAll();

  asio::io_context& io_;
  std::chrono::milliseconds interval_{30000};
  std::function<bool(const GatewayAddresses&)> changed_;
  std::vector<std::string> names_;
  std::map<std::string, GatewayAddresses> byName_;
  GatewayAddresses current_;
  asio::steady_timer timer_;
  bool stopped_ = false;
  bool started_ = false;
};

}  // namespace sluice
