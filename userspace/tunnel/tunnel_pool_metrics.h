// What the tunnel pool reports about its connections to each gateway, for the metric
// sluice_tunnel_connections{gateway,state}. The pool calls setTunnelConnections whenever
// a count changes (from any thread); the agent's metrics implement it.
#pragma once

#include <cstdint>
#include <string>

namespace sluice {

enum class TunnelState { Connecting, Ready, Draining, Failed };

inline const char* toString(TunnelState state) {
  switch (state) {
    case TunnelState::Connecting:
      return "connecting";
    case TunnelState::Ready:
      return "ready";
    case TunnelState::Draining:
      return "draining";
    case TunnelState::Failed:
      return "failed";
  }
  return "unknown";
}

class TunnelPoolMetrics {
 public:
  virtual ~TunnelPoolMetrics() = default;
  // `gateway`: "address:port" as the rules name it.
  virtual void setTunnelConnections(const std::string& gateway, TunnelState state, int64_t count) = 0;
};

}  // namespace sluice
