// The rules: sluice's native YAML and Istio's networking resources (ServiceEntry,
// Gateway, DestinationRule, VirtualService), possibly in several files and documents,
// loaded into one model for the agent and the gateway. See README.md "Rules".
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
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

// SL_DEFAULT_SOCKET_MARK of bpf/include/sluice_abi.h (that header is kernel-facing; the
// rules model does not include it). datapath_state_test checks they agree.
inline constexpr uint32_t kDefaultSocketMark = 0x1051;
// Mark bits others give meaning: kube-proxy 0x4000 (masquerade) and 0x8000 (drop),
// Cilium 0x0f00 and the upper 16 bits (also Calico's default mask).
inline constexpr uint32_t kForeignMarkBits = 0xffff0000U | 0x8000U | 0x4000U | 0x0f00U;

struct TlsFiles {
  std::filesystem::path ca;    // PEM bundle of the CA that signs the peer
  std::filesystem::path cert;  // PEM chain of this daemon's certificate
  std::filesystem::path key;   // PEM private key
};

// One gateway as the agent config names it: an IPv4 or IPv6 address, or a DNS name
// that may resolve to several (a headless Service), with the port.
struct GatewayTarget {
  std::string host;  // "198.18.3.2", "2001:db8::1" (no brackets) or a name
  uint16_t port = 0;
  bool operator==(const GatewayTarget&) const = default;
};

struct HostRule {
  std::string name;  // exact or "*.domain", normalised
  std::set<uint16_t> ports;
};

// Istio's meshConfig.outboundTrafficPolicy: what the agent does with a host no rule names.
enum class OutboundPolicy {
  RegistryOnly,  // refuse it (the default, deny by default)
  AllowAny,      // pass it straight to its original destination, not via the gateway
};

// What the agent does with a ClientHello that carries encrypted_client_hello (ECH): its
// real server name is encrypted, and the SNI it shows is the outer (public) name.
enum class EchPolicy {
  Deny,   // refuse it (the default): the host the app reaches is not the one decided on
  Allow,  // decide by the outer SNI, like any other hello
};

struct AgentConfig {
  Ipv4Endpoint listen;                 // where connect4 sends redirected connections
  std::optional<Ipv6Address> listen6;  // IPv6 listener (same port); none: IPv6 is refused
  std::set<uint16_t> redirectPorts;
  bool blockQuic = true;         // UDP to redirected ports fails with EPERM
  std::vector<Ipv4Cidr> bypass;  // as written; loopback etc. are added by the agent
  std::vector<Ipv6Cidr> bypass6;
  std::vector<std::string> cgroups;  // relative to the cgroup2 mount
  // The kubelet's pod parent ("auto": kubepods.slice or kubepods under the cgroup2
  // mount; empty: none), enrolled like `cgroups`: every pod, present and future, is
  // enforced from its first connect.
  std::string kubepodsCgroup;
  std::vector<std::string> exemptCgroups;  // never redirected although an ancestor is enrolled
  std::chrono::milliseconds clientHelloTimeout{5000};
  uint32_t maxClientHelloBytes = 16384;
  TlsFiles tls;
  // The gateways (agent.gateway.addresses, or .address as a list of one). Streams
  // spread over the healthy ones.
  std::vector<GatewayTarget> gateways;
  // The first IPv4 address among them (bypassed in the kernel like every literal one).
  Ipv4Endpoint gatewayAddress;
  uint32_t gatewayConnections = 2;  // pooled mTLS connections per gateway
  std::chrono::milliseconds gatewayPingInterval{5000};
  std::chrono::milliseconds gatewayPingTimeout{5000};
  // From the CONNECT to the gateway's answer (it dials the origin meanwhile).
  std::chrono::milliseconds gatewayResponseTimeout{15000};
  std::string gatewayIdentity;  // expected URI SAN of the gateway, e.g. spiffe://...
  // The name Istio resources use for the egress gateway (DestinationRule host,
  // VirtualService destination).
  std::string gatewayService = "istio-egressgateway.istio-system.svc.cluster.local";
  std::chrono::milliseconds gatewayConnectTimeout{5000};
  // Gateways given as names are resolved again this often (the pools' targets and the
  // kernel's bypass).
  std::chrono::milliseconds gatewayResolveInterval{30000};
  std::chrono::milliseconds directConnectTimeout{5000};  // ALLOW_ANY connections
  std::chrono::milliseconds idleTimeout{3'600'000};      // a relay with no byte either way ends
  uint32_t socketMark = kDefaultSocketMark;              // SO_MARK of the agent's own sockets
  CidrSet allowPrivateCidrs;                             // private ranges an ALLOW_ANY pass-through may dial
  EchPolicy echPolicy = EchPolicy::Deny;
  // Caps (connection_limits.h): relayed connections in all, and per cgroup (per pod);
  // over a cap a new connection is reset at once.
  uint32_t maxConnections = 16384;
  uint32_t maxConnectionsPerPod = 1024;
};

struct GatewayConfig {
  Ipv4Endpoint listen;
  std::optional<Ipv6Address> listen6;   // also accept tunnels over IPv6 (same port)
  uint32_t maxStreamsPerTunnel = 1024;  // SETTINGS_MAX_CONCURRENT_STREAMS
  std::chrono::milliseconds pingInterval{10000};
  std::chrono::milliseconds pingTimeout{10000};
  Ipv4Endpoint dnsServer;
  std::chrono::milliseconds dnsTimeout{3000};
  std::chrono::milliseconds dnsCacheLifetime{5000};          // upper bound on a record's TTL; 0: ask every time
  std::chrono::milliseconds dnsNegativeCacheLifetime{1000};  // a failed lookup is remembered; 0: never
  std::chrono::milliseconds dnsMinCacheLifetime{1000};       // lower bound on a record's TTL (at most dnsCacheLifetime)
  uint32_t dnsCacheSize = 10000;                             // names kept (least recently used go first)
  std::chrono::milliseconds upstreamConnectTimeout{5000};
  std::chrono::milliseconds handshakeTimeout{5000};
  std::chrono::milliseconds idleTimeout{3'600'000};
  TlsFiles tls;
  std::set<std::string> allowedClients;  // URI SANs of agents that may use the gateway
  // How Istio resources name this gateway: Gateway metadata.name (as VirtualServices
  // list it in `gateways`) and the labels its Gateway `selector` must match.
  std::string name = "istio-egressgateway";
  std::map<std::string, std::string> labels{{"istio", "egressgateway"}};
  uint32_t socketMark = kDefaultSocketMark;  // SO_MARK of the gateway's upstream sockets
  // The address guard on DNS answers (address_guard.h): ranges never dialed (the
  // cluster's pod and service ranges), and private ranges that may be.
  CidrSet denyCidrs;
  CidrSet allowPrivateCidrs;
  // Caps (connection_limits.h): TLS handshakes in progress, in all and per peer address;
  // relayed connections per client identity. Over a cap a new connection is reset.
  uint32_t maxPendingHandshakes = 4096;
  uint32_t maxPendingHandshakesPerAddress = 512;
  uint32_t maxConnectionsPerClient = 16384;
};

// Where the gateway sends an allowed (host, port): to the host itself, resolved by DNS,
// unless a rule says otherwise.
struct UpstreamDestination {
  std::string host;  // resolved with DNS unless `addresses` is set
  uint16_t port = 0;
  uint32_t weight = 100;
  std::vector<uint32_t> addressesBe;  // ServiceEntry resolution STATIC
};

struct GatewayRoute {
  std::vector<UpstreamDestination> destinations;  // weighted choice
};

struct Config {
  std::vector<std::filesystem::path> sources;
  std::vector<HostRule> agentHosts;    // hosts the agent sends to the gateway
  std::vector<HostRule> gatewayHosts;  // hosts the gateway connects to
  OutboundPolicy outboundPolicy = OutboundPolicy::RegistryOnly;
  std::optional<AgentConfig> agent;
  std::optional<GatewayConfig> gateway;
  // "host:port" (rule name as in gatewayHosts) -> route; absent: the host itself by DNS.
  std::map<std::string, GatewayRoute> gatewayRoutes;
  // Fields sluice reads but that have no effect, each naming its place.
  std::vector<std::string> warnings;
  // A native `hosts: []` was written: no allowed host is what the author means, so a
  // reload to these rules is not refused for leaving no allowed host.
  bool emptyByIntent = false;

  HostMatcher agentMatcher() const;
  HostMatcher gatewayMatcher() const;
  // The route for an allowed gateway rule and port (the rule name HostMatcher returned).
  GatewayRoute routeFor(const std::string& rule, const std::string& host, uint16_t port) const;
};

// Throws ConfigError. Relative certificate paths are taken from each file's directory.
Config loadConfigFiles(const std::vector<std::filesystem::path>& paths);
Config loadConfigFile(const std::filesystem::path& path);
Config loadConfigText(const std::string& text, const std::filesystem::path& source);

// "198.18.3.2:15443", "[2001:db8::1]:15443" or "name:15443"; nullopt when malformed.
std::optional<GatewayTarget> parseGatewayTarget(std::string_view text);
std::string formatGatewayTarget(const GatewayTarget& target);

const char* toString(OutboundPolicy policy);
const char* toString(EchPolicy policy);

}  // namespace sluice
