// What the tunnel pools report about their connections to each gateway, for the metric
// sluice_tunnel_connections{gateway,state}, and how long a tunnel's handshake took. Every
// worker has its own pool, so each reports changes of its own counts (from its thread);
// the agent's metrics add them up.
#pragma once

#include <chrono>
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
  // `gateway`: "address:port"; `delta`: the change of this pool's count.
  virtual void addTunnelConnections(const std::string& gateway, TunnelState state, int64_t delta) = 0;
  // TCP connect and mTLS handshake of one tunnel connection.
  virtual void observeTunnelHandshake(std::chrono::steady_clock::duration took) = 0;
};

}  // namespace sluice
