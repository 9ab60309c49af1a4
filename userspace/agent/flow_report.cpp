#include "flow_report.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>
#include <random>

#include "log_record.h"
#include "rate_limiter.h"

namespace sluice {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

// Denies are what an attacker provokes at will: at most 20 records a second per reason,
// then one "deny-suppressed" line with the count when the next is written. Metrics count
// every one.
RateLimiter denyLog(20);

double seconds(FlowReport::Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

std::string formatEndpoint(const tcp::endpoint& endpoint) {
  if (endpoint.port() == 0 && endpoint.address().is_unspecified()) return "-";
  const auto& a = endpoint.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(endpoint.port());
}

// Every label value a flow can take, registered at start so that dashboards and rate()
// see zeros rather than missing series.
constexpr const char* kDenyReasons[] = {"no-original-destination",
                                        "client-hello-timeout",
                                        "client-closed-before-hello",
                                        "client-read-error",
                                        "not-tls",
                                        "bad-client-hello",
                                        "no-sni",
                                        "invalid-sni",
                                        "ech-refused",
                                        "host-not-allowed",
                                        "connection-limit",
                                        "pod-connection-limit",
                                        "drain-deadline"};
constexpr const char* kGuardReasons[] = {"unspecified", "loopback",  "link-local", "multicast", "broadcast",
                                         "reserved",    "deny-cidr", "private",    "self"};
// drain-deadline: reset by the drain while its tunnel attempt waited for the gateway.
constexpr const char* kFailures[] = {
    "local-socket-error", "no-gateway-available", "gateway-refused", "gateway-response-timeout", "tunnel",
    "drain-deadline"};
constexpr const char* kRetryCauses[] = {"tunnel", "gateway-response-timeout", "gateway-refused"};
constexpr const char* kRelayResults[] = {"ok", "idle-timeout", "relay-error", "reset", "drain-deadline"};

}  // namespace

const char* toString(FlowDecision decision) {
  switch (decision) {
    case FlowDecision::Denied:
      return "denied";
    case FlowDecision::Failed:
      return "failed";
    case FlowDecision::Allowed:
      return "allowed";
    case FlowDecision::Passthrough:
      return "passthrough";
  }
  return "unknown";
}

std::string newConnectionId() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(random()));
  return text;
}

std::pair<std::string, std::string> splitReason(const std::string& reason) {
  auto colon = reason.find(':');
  if (colon == std::string::npos) return {reason, ""};
  std::string code = reason.substr(0, colon);
  if (code == "destination-refused" || code == "dns-refused") return {reason, ""};
  return {code, reason.substr(colon + 1)};
}

AgentMetrics::AgentMetrics(MetricsRegistry& registry)
    : connections(BuildCounter()
                      .Name("sluice_agent_connections_total")
                      .Help("Connections the agent finished, by decision (allowed, denied, failed, passthrough) and "
                            "reason (deny reason, or how an allowed flow ended)")
                      .Register(registry.registry())),
      bytes(BuildCounter()
                .Name("sluice_agent_bytes_total")
                .Help("Bytes relayed by the agent, by direction (up: app to origin, down: origin to app)")
                .Register(registry.registry())),
      bytesUp(bytes.Add({{"direction", "up"}})),
      bytesDown(bytes.Add({{"direction", "down"}})),
      activeFlows(BuildGauge()
                      .Name("sluice_agent_active_flows")
                      .Help("Connections the agent holds now (inspecting or relaying)")
                      .Register(registry.registry())
                      .Add({})),
      flowDuration(BuildHistogram()
                       .Name("sluice_agent_flow_duration_seconds")
                       .Help("Accept to close of connections the agent carried")
                       .Register(registry.registry())
                       .Add({}, durationBuckets())),
      firstByte(BuildHistogram()
                    .Name("sluice_agent_connect_to_first_byte_seconds")
                    .Help("Accept of the app's connection to the first byte back from the origin")
                    .Register(registry.registry())
                    .Add({}, latencyBuckets())),
      clientHelloWait(BuildHistogram()
                          .Name("sluice_agent_client_hello_wait_seconds")
                          .Help("Accept to a complete TLS ClientHello")
                          .Register(registry.registry())
                          .Add({}, latencyBuckets())),
      gatewayConnect(BuildHistogram()
                         .Name("sluice_agent_gateway_connect_seconds")
                         .Help("TCP connect to the gateway")
                         .Register(registry.registry())
                         .Add({}, latencyBuckets())),
      gatewayHandshake(BuildHistogram()
                           .Name("sluice_agent_gateway_handshake_seconds")
                           .Help("mTLS handshake with the gateway (full or resumed)")
                           .Register(registry.registry())
                           .Add({}, latencyBuckets())),
      tunnelConnections(BuildGauge()
                            .Name("sluice_tunnel_connections")
                            .Help("Tunnel connections to each gateway, by state (connecting, ready, draining, failed)")
                            .Register(registry.registry())),
      retries(BuildCounter()
                  .Name("sluice_flow_retries_total")
                  .Help("CONNECT streams opened again on another gateway before the origin's first byte, by why the "
                        "one before failed (tunnel, gateway-response-timeout, gateway-refused)")
                  .Register(registry.registry())),
      deniedHosts(BuildCounter()
                      .Name("sluice_agent_denied_hosts_total")
                      .Help("Connections denied as host-not-allowed, by host (the first 100 names; later ones as "
                            "other)")
                      .Register(registry.registry())) {
  for (const char* reason : kDenyReasons) connections.Add({{"decision", "denied"}, {"reason", reason}});
  for (const char* reason : kGuardReasons) {
    connections.Add({{"decision", "denied"}, {"reason", std::string("destination-refused:") + reason}});
  }
  for (const char* reason : kFailures) connections.Add({{"decision", "failed"}, {"reason", reason}});
  for (const char* reason : kRelayResults) connections.Add({{"decision", "allowed"}, {"reason", reason}});
  for (const char* cause : kRetryCauses) retries.Add({{"cause", cause}});
}

void AgentMetrics::addTunnelConnections(const std::string& gateway, TunnelState state, int64_t delta) {
  tunnelConnections.Add({{"gateway", gateway}, {"state", toString(state)}}).Increment(static_cast<double>(delta));
}

void AgentMetrics::observeTunnelHandshake(std::chrono::steady_clock::duration took) {
  gatewayHandshake.Observe(seconds(took));
}

prometheus::Counter& AgentMetrics::deniedHost(const std::string& host) {
  std::lock_guard lock(deniedMutex_);
  if (!deniedSeen_.contains(host)) {
    if (deniedSeen_.size() >= kMaxDeniedHosts) return deniedHosts.Add({{"host", "other"}});
    deniedSeen_.insert(host);
  }
  return deniedHosts.Add({{"host", host}});
}

void FlowReporter::started() {
  if (metrics_) metrics_->activeFlows.Increment();
}

void FlowReporter::retried(const std::string& connectionId, const std::string& gateway, const std::string& failure) {
  const auto [code, detail] = splitReason(failure);
  LogRecord record("retry");
  record.add("gateway", gateway).add("after", code);
  if (!detail.empty()) record.add("detail", detail);
  record.add("connection_id", connectionId);
  writeRecord(spdlog::level::info, record);
  if (!metrics_) return;
  const bool known = std::find(std::begin(kRetryCauses), std::end(kRetryCauses), code) != std::end(kRetryCauses);
  metrics_->retries.Add({{"cause", known ? code : std::string("tunnel")}}).Increment();
}

void FlowReporter::report(const FlowReport& flow) {
  const auto [code, detail] = splitReason(flow.reason);
  const bool carried = flow.decision == FlowDecision::Allowed || flow.decision == FlowDecision::Passthrough;
  const auto elapsed = FlowReport::Clock::now() - flow.started;

  LogRecord record(flow.decision == FlowDecision::Denied ? "deny" : "flow");
  record.add("cgroup", flow.cgroupId)
      .add("pod", flow.pod)
      .add("src", formatEndpoint(flow.client))
      .add("dst", formatEndpoint(flow.destination))
      .add("sni", flow.sni);
  if (flow.decision == FlowDecision::Denied) {
    record.add("reason", code);
    if (!detail.empty()) record.add("detail", detail);
  } else {
    record.add("rule", flow.rule);
    if (flow.decision == FlowDecision::Passthrough) record.add("via", "direct").add("policy", "ALLOW_ANY");
    record.add("tunnel", flow.tunnel)
        .add("up", flow.up)
        .add("down", flow.down)
        .add("duration_ms",
             static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()))
        .add("result", code);
    if (!detail.empty()) record.add("detail", detail);
    record.add("gateway", flow.gateway).add("retries", static_cast<uint64_t>(flow.retries));
  }
  record.add("connection_id", flow.connectionId);
  bool write = true;
  if (flow.decision == FlowDecision::Denied) {
    auto admission = denyLog.admit(code);
    write = admission.log;
    if (write && admission.suppressed) {
      spdlog::warn("deny-suppressed reason={} count={}", code, admission.suppressed);
    }
  }
  if (write) {
    writeRecord(flow.decision == FlowDecision::Failed   ? spdlog::level::err
                : flow.decision == FlowDecision::Denied ? spdlog::level::warn
                                                        : spdlog::level::info,
                record);
  }

  if (!metrics_) return;
  metrics_->activeFlows.Decrement();
  metrics_->connections.Add({{"decision", toString(flow.decision)}, {"reason", code}}).Increment();
  if (code == "host-not-allowed") metrics_->deniedHost(flow.sni).Increment();
  if (flow.up) metrics_->bytesUp.Increment(static_cast<double>(flow.up));
  if (flow.down) metrics_->bytesDown.Increment(static_cast<double>(flow.down));
  if (carried) metrics_->flowDuration.Observe(seconds(elapsed));
  if (flow.clientHelloWait) metrics_->clientHelloWait.Observe(seconds(*flow.clientHelloWait));
  if (flow.gatewayConnect) metrics_->gatewayConnect.Observe(seconds(*flow.gatewayConnect));
  if (flow.firstByte) metrics_->firstByte.Observe(seconds(*flow.firstByte));
}

}  // namespace sluice
