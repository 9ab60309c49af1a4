// The rules: sluice's native YAML format, loaded into one model for the agent and the
// gateway. See README.md "Rules file" for the format.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "host_matcher.h"
#include "net_address.h"

namespace sluice {

// A config error names the file, line and column and what is wrong there.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TlsFiles {
  std::filesystem::path ca;    // PEM bundle of the CA that signs the peer
  std::filesystem::path cert;  // PEM chain of this daemon's certificate
  std::filesystem::path key;   // PEM private key
};

struct HostRule {
  std::string name;  // exact or "*.domain", normalised
  std::set<uint16_t> ports;
};

struct AgentConfig {
  Ipv4Endpoint listen;             // where connect4 sends redirected connections
  std::set<uint16_t> redirectPorts;
  std::vector<Ipv4Cidr> bypass;    // as written; loopback etc. are added by the agent
  std::vector<std::string> cgroups;  // relative to the cgroup2 mount
  std::chrono::milliseconds clientHelloTimeout{5000};
  uint32_t maxClientHelloBytes = 16384;
  TlsFiles tls;
  Ipv4Endpoint gatewayAddress;
  std::string gatewayIdentity;  // expected URI SAN of the gateway, e.g. spiffe://...
  std::chrono::milliseconds gatewayConnectTimeout{5000};
};

struct GatewayConfig {
  Ipv4Endpoint listen;
  Ipv4Endpoint dnsServer;
  std::chrono::milliseconds dnsTimeout{3000};
  std::chrono::milliseconds upstreamConnectTimeout{5000};
  std::chrono::milliseconds handshakeTimeout{5000};
  TlsFiles tls;
  std::set<std::string> allowedClients;  // URI SANs of agents that may use the gateway
};

struct Config {
  std::filesystem::path source;
  std::vector<HostRule> hosts;
  std::optional<AgentConfig> agent;
  std::optional<GatewayConfig> gateway;

  HostMatcher hostMatcher() const;
};

// Throws ConfigError. Relative certificate paths are taken from the file's directory.
Config loadConfigFile(const std::filesystem::path& path);
Config loadConfigText(const std::string& text, const std::filesystem::path& source);

}  // namespace sluice
