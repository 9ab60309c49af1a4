// What the gateway tells about one tunnelled connection: filled while it runs, handed
// once to AccessReporter::report (access record in text or JSON, and the metrics).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "metrics_registry.h"

namespace sluice {

struct AccessReport {
  using Clock = std::chrono::steady_clock;
  // The agent's id for the flow (request header sluice-connection-id of the pooled
  // tunnel); empty (logged "-") until the agent sends it.
  std::string connectionId;
  std::string peerAddress = "?";
  std::string identity = "-";
  std::string peerSerial = "-";  // which version of a rotating agent certificate came
  std::string sni = "-";
  uint16_t port = 0;
  std::string upstream = "-";
  uint64_t up = 0;  // agent -> origin
  uint64_t down = 0;
  // "ok", "host-not-allowed", "handshake-failed:<why>": the part before the first ':' is
  // the record's result and the metric label, the rest its detail (dns-refused:<reason>
  // stays whole).
  std::string result;
  Clock::time_point started = Clock::now();
  std::optional<Clock::duration> handshake;        // TLS handshake with the agent
  std::optional<Clock::duration> dns;              // an answer not from the cache
  std::optional<Clock::duration> upstreamConnect;  // TCP connect to the origin (all attempts)
};

class GatewayMetrics {
 public:
  explicit GatewayMetrics(MetricsRegistry& registry);

  prometheus::Family<prometheus::Counter>& connections;
  prometheus::Family<prometheus::Counter>& bytes;
  prometheus::Counter& bytesUp;
  prometheus::Counter& bytesDown;
  prometheus::Gauge& activeFlows;
  prometheus::Histogram& flowDuration;
  prometheus::Histogram& handshake;
  prometheus::Histogram& dns;
  prometheus::Histogram& upstreamConnect;
  prometheus::Family<prometheus::Counter>& dnsRefused;
  prometheus::Counter& dnsCacheHits;
  prometheus::Counter& emptyConnections;
};

class AccessReporter {
 public:
  explicit AccessReporter(GatewayMetrics* metrics) : metrics_(metrics) {}
  void started();
  void report(const AccessReport& access);
  // A DNS answer the address guard refused (per refused address).
  void refusedAddress(const char* reason);
  void dnsCacheHit();
  // A connection that closed before sending a byte (a TCP health probe): not a flow.
  void emptyConnection();

 private:
  GatewayMetrics* metrics_;
};

}  // namespace sluice
