#include "access_report.h"

#include "log_record.h"

namespace sluice {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

double seconds(AccessReport::Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

std::pair<std::string, std::string> splitResult(const std::string& result) {
  auto colon = result.find(':');
  if (colon == std::string::npos) return {result, ""};
  std::string code = result.substr(0, colon);
  if (code == "dns-refused") return {result, ""};
  return {code, result.substr(colon + 1)};
}

constexpr const char* kResults[] = {"ok",
                                    "handshake-failed",
                                    "handshake-timeout",
                                    "identity-not-allowed",
                                    "handshake-limit",
                                    "handshake-limit-per-address",
                                    "no-h2-alpn",
                                    "client-connection-limit",
                                    "bad-method",
                                    "bad-authority",
                                    "host-not-allowed",
                                    "dns-failed",
                                    "upstream-connect",
                                    "upstream-connect-timeout",
                                    "relay-error",
                                    "reset",
                                    "idle-timeout",
                                    "drain-deadline"};
constexpr const char* kGuardReasons[] = {"unspecified", "loopback",  "link-local", "multicast", "broadcast",
                                         "reserved",    "deny-cidr", "private",    "self"};

}  // namespace

GatewayMetrics::GatewayMetrics(MetricsRegistry& registry)
    : connections(BuildCounter()
                      .Name("sluice_gateway_connections_total")
                      .Help("Tunnelled connections the gateway finished, by result")
                      .Register(registry.registry())),
      bytes(BuildCounter()
                .Name("sluice_gateway_bytes_total")
                .Help("Bytes relayed by the gateway, by direction (up: agent to origin, down: origin to agent)")
                .Register(registry.registry())),
      bytesUp(bytes.Add({{"direction", "up"}})),
      bytesDown(bytes.Add({{"direction", "down"}})),
      activeFlows(BuildGauge()
                      .Name("sluice_gateway_active_flows")
                      .Help("Tunnelled connections the gateway holds now")
                      .Register(registry.registry())
                      .Add({})),
      flowDuration(BuildHistogram()
                       .Name("sluice_gateway_flow_duration_seconds")
                       .Help("Accept to close of tunnelled connections that reached an origin")
                       .Register(registry.registry())
                       .Add({}, durationBuckets())),
      handshake(BuildHistogram()
                    .Name("sluice_gateway_handshake_seconds")
                    .Help("mTLS handshake with an agent")
                    .Register(registry.registry())
                    .Add({}, latencyBuckets())),
      dns(BuildHistogram()
              .Name("sluice_gateway_dns_seconds")
              .Help("DNS resolution of a host (answers from the cache are not timed)")
              .Register(registry.registry())
              .Add({}, latencyBuckets())),
      upstreamConnect(BuildHistogram()
                          .Name("sluice_gateway_upstream_connect_seconds")
                          .Help("TCP connect to the origin, every address tried")
                          .Register(registry.registry())
                          .Add({}, latencyBuckets())),
      dnsRefused(BuildCounter()
                     .Name("sluice_gateway_dns_refused_addresses_total")
                     .Help("DNS answers the address guard refused to dial, by reason")
                     .Register(registry.registry())),
      dnsCacheHits(BuildCounter()
                       .Name("sluice_gateway_dns_cache_hits_total")
                       .Help("Host lookups answered from the DNS cache")
                       .Register(registry.registry())
                       .Add({})),
      emptyConnections(BuildCounter()
                           .Name("sluice_gateway_empty_connections_total")
                           .Help("Connections closed before sending a byte (agents' TCP health probes)")
                           .Register(registry.registry())
                           .Add({})) {
  for (const char* result : kResults) connections.Add({{"result", result}});
  for (const char* reason : kGuardReasons) {
    connections.Add({{"result", std::string("dns-refused:") + reason}});
    dnsRefused.Add({{"reason", reason}});
  }
}

void AccessReporter::started() {
  if (metrics_) metrics_->activeFlows.Increment();
}

void AccessReporter::report(const AccessReport& r) {
  const auto [code, detail] = splitResult(r.result);
  const auto elapsed = AccessReport::Clock::now() - r.started;
  LogRecord record("access");
  record.add("peer", r.peerAddress)
      .add("identity", r.identity)
      .add("sni", r.sni)
      .add("port", uint64_t{r.port})
      .add("upstream", r.upstream)
      .add("up", r.up)
      .add("down", r.down)
      .add("duration_ms", static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()))
      .add("result", code);
  if (!detail.empty()) record.add("detail", detail);
  record.add("peer_serial", r.peerSerial).add("connection_id", r.connectionId.empty() ? "-" : r.connectionId);
  writeRecord(code == "ok" ? spdlog::level::info : spdlog::level::warn, record);

  if (!metrics_) return;
  metrics_->activeFlows.Decrement();
  metrics_->connections.Add({{"result", code}}).Increment();
  if (r.up) metrics_->bytesUp.Increment(static_cast<double>(r.up));
  if (r.down) metrics_->bytesDown.Increment(static_cast<double>(r.down));
  if (r.upstream != "-" && r.upstreamConnect) metrics_->flowDuration.Observe(seconds(elapsed));
  if (r.handshake) metrics_->handshake.Observe(seconds(*r.handshake));
  if (r.dns) metrics_->dns.Observe(seconds(*r.dns));
  if (r.upstreamConnect) metrics_->upstreamConnect.Observe(seconds(*r.upstreamConnect));
}

void AccessReporter::refusedAddress(const char* reason) {
  if (metrics_) metrics_->dnsRefused.Add({{"reason", reason}}).Increment();
}

void AccessReporter::dnsCacheHit() {
  if (metrics_) metrics_->dnsCacheHits.Increment();
}

void AccessReporter::emptyConnection() {
  if (metrics_) metrics_->emptyConnections.Increment();
}

}  // namespace sluice
