// What the agent tells about one connection: filled while the flow runs, handed once to
// FlowReporter::report, which writes the access record (text or JSON) and updates the
// metrics. One call per outcome keeps the forwarder's own code about forwarding.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "async.h"
#include "metrics_registry.h"
#include "tunnel_pool_metrics.h"

namespace sluice {

enum class FlowDecision {
  Denied,       // refused by the agent (reason: a deny reason)
  Failed,       // allowed, but the tunnel to the gateway could not be made
  Allowed,      // carried to the gateway (reason: how the relay ended)
  Passthrough,  // ALLOW_ANY: carried to its original destination directly
};
const char* toString(FlowDecision decision);

struct FlowReport {
  using Clock = std::chrono::steady_clock;
  std::string connectionId;  // 16 lower-case hex digits, sent to the gateway
  tcp::endpoint client;
  tcp::endpoint destination;  // the original destination
  uint64_t cgroupId = 0;
  std::string pod = "-";  // pod UID from the cgroup path; "-" for a cgroup that is not a pod's
  std::string sni = "-";
  std::string rule = "-";
  std::string gateway = "-";  // address:port of the gateway the flow went to
  std::string tunnel = "-";   // h2: a stream on a pooled tunnel
  int retries = 0;            // streams tried again on another gateway before this one
  uint64_t up = 0;            // app -> origin bytes (the ClientHello included)
  uint64_t down = 0;
  FlowDecision decision = FlowDecision::Denied;
  // A deny reason or a result: "host-not-allowed", "ok", "gateway-connect:Connection
  // refused". The part before the first ':' is the metric label and the record's
  // reason/result; the rest its `detail` (except for bounded forms like
  // destination-refused:<guard reason>, kept whole).
  std::string reason;
  Clock::time_point started = Clock::now();
  std::optional<Clock::duration> clientHelloWait;
  std::optional<Clock::duration> gatewayConnect;  // the CONNECT stream: request to the gateway's answer
  std::optional<Clock::duration> firstByte;       // accept to the origin's first byte
};

// A fresh random connection id: 16 lower-case hex digits.
std::string newConnectionId();
// "host-not-allowed" -> {"host-not-allowed", ""}; "not-tls:bad record" -> {"not-tls", "bad record"};
// "destination-refused:link-local" stays whole.
std::pair<std::string, std::string> splitReason(const std::string& reason);

// The agent's metrics (names in the README's Observability section).
class AgentMetrics final : public TunnelPoolMetrics {
 public:
  explicit AgentMetrics(MetricsRegistry& registry);
  void addTunnelConnections(const std::string& gateway, TunnelState state, int64_t delta) override;
  void observeTunnelHandshake(std::chrono::steady_clock::duration took) override;

  prometheus::Family<prometheus::Counter>& connections;
  prometheus::Family<prometheus::Counter>& bytes;
  prometheus::Counter& bytesUp;
  prometheus::Counter& bytesDown;
  prometheus::Gauge& activeFlows;
  prometheus::Histogram& flowDuration;
  prometheus::Histogram& firstByte;
  prometheus::Histogram& clientHelloWait;
  prometheus::Histogram& gatewayConnect;
  prometheus::Histogram& gatewayHandshake;
  prometheus::Family<prometheus::Gauge>& tunnelConnections;
  // Streams opened again on another gateway, by why the one before failed (kRetryCauses).
  prometheus::Family<prometheus::Counter>& retries;
  // Hosts refused as host-not-allowed: the first kMaxDeniedHosts names get a series of
  // their own, later ones count as host="other" (SNI is the client's to choose).
  prometheus::Family<prometheus::Counter>& deniedHosts;
  static constexpr size_t kMaxDeniedHosts = 100;
  prometheus::Counter& deniedHost(const std::string& host);

 private:
  std::mutex deniedMutex_;
  std::set<std::string> deniedSeen_;
};

class FlowReporter {
 public:
  explicit FlowReporter(AgentMetrics* metrics) : metrics_(metrics) {}
  // A connection was accepted (active flows + 1); report() takes it back.
  void started();
  // The one record of a flow: access log line and metrics.
  void report(const FlowReport& flow);
  // A flow's stream failed before the origin's first byte and is opened again elsewhere:
  // one log line and sluice_flow_retries_total{cause} (cause: tunnel,
  // gateway-response-timeout, gateway-refused; the code before the first ':' of `failure`).
  void retried(const std::string& connectionId, const std::string& gateway, const std::string& failure);
  AgentMetrics* metrics() const { return metrics_; }

 private:
  AgentMetrics* metrics_;  // none in unit tests of the forwarder
};

}  // namespace sluice
