// The agent's and the gateway's metrics: registered with their label values at start,
// updated once per reported flow, exposed in the Prometheus text format.
#include <gtest/gtest.h>

#include "access_report.h"
#include "admin_client.h"
#include "admin_server.h"
#include "daemon_metrics.h"
#include "flow_report.h"
#include "metrics_registry.h"

namespace sluice {
namespace {

// The value of one sample line ("name{labels} value") in an exposition, or -1.
double sample(const std::string& text, const std::string& series) {
  auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

TEST(MetricsTest, AgentRegistersEveryDenyReasonAtZero) {
  MetricsRegistry registry;
  AgentMetrics metrics(registry);
  const std::string text = registry.serialize();
  for (const char* reason : {"no-original-destination", "client-hello-timeout", "not-tls", "no-sni", "invalid-sni",
                             "ech-refused", "host-not-allowed", "destination-refused:link-local"}) {
    EXPECT_EQ(
        sample(text, std::string("sluice_agent_connections_total{decision=\"denied\",reason=\"") + reason + "\"}"), 0)
        << reason;
  }
  EXPECT_NE(text.find("# TYPE sluice_agent_flow_duration_seconds histogram"), std::string::npos);
  EXPECT_NE(text.find("# TYPE sluice_agent_connections_total counter"), std::string::npos);
}

TEST(MetricsTest, OneReportPerFlowUpdatesEachMetricOnce) {
  MetricsRegistry registry;
  AgentMetrics metrics(registry);
  FlowReporter reporter(&metrics);
  reporter.started();
  FlowReport denied;
  denied.decision = FlowDecision::Denied;
  denied.reason = "not-tls:record type 0x47";
  reporter.report(denied);
  reporter.started();
  FlowReport allowed;
  allowed.decision = FlowDecision::Allowed;
  allowed.reason = "ok";
  allowed.up = 752;
  allowed.down = 1039;
  allowed.gatewayConnect = std::chrono::milliseconds(2);
  reporter.report(allowed);
  // Two workers' pools report their own changes; the gauge is their sum.
  metrics.addTunnelConnections("198.18.3.2:15443", TunnelState::Ready, 3);
  metrics.addTunnelConnections("198.18.3.2:15443", TunnelState::Ready, 2);
  metrics.addTunnelConnections("198.18.3.2:15443", TunnelState::Ready, -1);
  metrics.observeTunnelHandshake(std::chrono::milliseconds(3));
  const std::string text = registry.serialize();
  EXPECT_EQ(sample(text, "sluice_agent_connections_total{decision=\"denied\",reason=\"not-tls\"}"), 1);
  EXPECT_EQ(sample(text, "sluice_agent_connections_total{decision=\"allowed\",reason=\"ok\"}"), 1);
  EXPECT_EQ(sample(text, "sluice_agent_bytes_total{direction=\"up\"}"), 752);
  EXPECT_EQ(sample(text, "sluice_agent_bytes_total{direction=\"down\"}"), 1039);
  EXPECT_EQ(sample(text, "sluice_agent_active_flows"), 0);
  EXPECT_EQ(sample(text, "sluice_agent_gateway_connect_seconds_count"), 1);
  EXPECT_EQ(sample(text, "sluice_agent_flow_duration_seconds_count"), 1);  // carried flows only
  EXPECT_EQ(sample(text, "sluice_tunnel_connections{gateway=\"198.18.3.2:15443\",state=\"ready\"}"), 4);
  EXPECT_EQ(sample(text, "sluice_agent_gateway_handshake_seconds_count"), 1);
}

TEST(MetricsTest, GatewayResultsAndCollectors) {
  MetricsRegistry registry;
  GatewayMetrics metrics(registry);
  AccessReporter reporter(&metrics);
  reporter.started();
  AccessReport r;
  r.result = "handshake-failed:peer did not return a certificate";
  reporter.report(r);
  reporter.refusedAddress("link-local");
  DaemonFacts facts{"gateway", 3, 2, 1, 1.7e9, 0, 0};
  registry.addCollector([facts] { return daemonFamilies(facts); });
  const std::string text = registry.serialize();
  EXPECT_EQ(sample(text, "sluice_gateway_connections_total{result=\"handshake-failed\"}"), 1);
  EXPECT_EQ(sample(text, "sluice_gateway_connections_total{result=\"ok\"}"), 0);
  EXPECT_EQ(sample(text, "sluice_gateway_dns_refused_addresses_total{reason=\"link-local\"}"), 1);
  EXPECT_EQ(sample(text, "sluice_rules_version"), 3);
  EXPECT_EQ(sample(text, "sluice_rules_reloads_total{result=\"rejected\"}"), 1);
  EXPECT_EQ(sample(text, "sluice_certificate_expiry_timestamp_seconds"), 1.7e9);
}

TEST(MetricsTest, ReasonsSplitIntoCodeAndDetail) {
  EXPECT_EQ(splitReason("host-not-allowed"), std::make_pair(std::string("host-not-allowed"), std::string()));
  EXPECT_EQ(splitReason("not-tls:bad: record"), std::make_pair(std::string("not-tls"), std::string("bad: record")));
  EXPECT_EQ(splitReason("destination-refused:link-local").first, "destination-refused:link-local");
  const std::string id = newConnectionId();
  EXPECT_EQ(id.size(), 16u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(id, newConnectionId());
}

TEST(AdminServerTest, ServesRoutesAndRefusesTheRest) {
  asio::io_context io;
  AdminServer server(io, parseAdminAddress("127.0.0.1:0"));
  server.route("/healthz", [] { return AdminResponse{200, "text/plain", "ok\n"}; });
  server.route("/echo", [](const AdminRequest& r) {
    auto it = r.query.find("to");
    return AdminResponse{200, "text/plain", it == r.query.end() ? "-" : it->second};
  });
  server.start();
  const tcp::endpoint at = server.localEndpoint();
  std::thread serving([&io] { io.run(); });
  std::string error;
  auto ok = adminGet(at, "/healthz", std::chrono::seconds(2), error);
  ASSERT_TRUE(ok) << error;
  EXPECT_EQ(ok->status, 200u);
  EXPECT_EQ(ok->body, "ok\n");
  auto echo = adminGet(at, "/echo?to=" + urlEncode("[2001:db8::1]:443"), std::chrono::seconds(2), error);
  ASSERT_TRUE(echo) << error;
  EXPECT_EQ(echo->body, "[2001:db8::1]:443");
  auto missing = adminGet(at, "/nope", std::chrono::seconds(2), error);
  ASSERT_TRUE(missing) << error;
  EXPECT_EQ(missing->status, 404u);
  asio::post(io, [&server] { server.stop(); });
  io.stop();
  serving.join();
  // Nothing listening: no answer, and a reason.
  EXPECT_FALSE(adminGet(at, "/healthz", std::chrono::milliseconds(500), error));
  EXPECT_FALSE(error.empty());
  EXPECT_THROW(parseAdminAddress("localhost:15020"), std::runtime_error);
  EXPECT_THROW(parseAdminAddress("127.0.0.1:99999"), std::runtime_error);
  EXPECT_EQ(parseAdminAddress("[::1]:15020").port(), 15020);
}

}  // namespace
}  // namespace sluice
