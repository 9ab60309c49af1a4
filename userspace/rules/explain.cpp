#include "explain.h"

#include <arpa/inet.h>

#include <cstring>

namespace sluice {
namespace {

bool inCidr(uint32_t addressBe, const Ipv4Cidr& cidr) {
  uint32_t mask = cidr.prefixLength == 0 ? 0 : htonl(0xffffffffu << (32 - cidr.prefixLength));
  return (addressBe & mask) == (cidr.addressBe & mask);
}

bool isV4Mapped(const Ipv6Address& a) {
  for (int i = 0; i < 10; ++i) {
    if (a[i] != 0) return false;
  }
  return a[10] == 0xff && a[11] == 0xff;
}

}  // namespace

bool parseDestination(const std::string& text, ConnectionQuery& query) {
  if (auto v4 = parseIpv4Endpoint(text)) {
    query.to = *v4;
    query.to6.reset();
    return true;
  }
  auto close = text.find("]:");
  if (text.empty() || text.front() != '[' || close == std::string::npos) return false;
  auto address = parseIpv6(std::string_view(text).substr(1, close - 1));
  if (!address) return false;
  const std::string port = text.substr(close + 2);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return false;
  const unsigned long value = std::stoul(port);
  if (value == 0 || value > 65535) return false;
  query.to6 = *address;
  query.to.addressBe = 0;
  query.to.port = static_cast<uint16_t>(value);
  return true;
}

Explanation explainConnection(const Config& config, const ConnectionQuery& original) {
  const AgentConfig& agent = *config.agent;
  Explanation out;
  auto say = [&](std::string line) { out.lines.push_back(std::move(line)); };
  ConnectionQuery query = original;
  if (query.to6 && isV4Mapped(*query.to6)) {
    uint32_t be;
    std::memcpy(&be, query.to6->data() + 12, 4);
    query.to.addressBe = be;
    query.to6.reset();
    say("destination: IPv4-mapped: the hooks decide it as the IPv4 address " + formatIpv4(be));
  }
  const std::string to =
      query.to6 ? "[" + formatIpv6(*query.to6) + "]:" + std::to_string(query.to.port) : formatEndpoint(query.to);

  // 1. The kernel: connect4 runs only in enabled cgroups, then checks port and bypass.
  if (!query.cgroupEnabled) {
    say("redirect: no: the cgroup is not enabled (sluice runs no program for it); the connection goes to " + to +
        " directly, where the node's network policy applies");
    return out;
  }
  say("cgroup: enabled by " + query.enabledBy);
  if (!agent.redirectPorts.contains(query.to.port)) {
    say("redirect: no: port " + std::to_string(query.to.port) + " is not in agent.redirectPorts");
    return out;
  }
  if (query.to6) {
    std::vector<std::pair<Ipv6Cidr, std::string>> bypass;
    for (const auto& c : agent.bypass6) bypass.push_back({c, "agent.bypassCidrs"});
    bypass.push_back({*parseIpv6Cidr("::1/128"), "loopback (always bypassed)"});
    if (agent.listen6) bypass.push_back({Ipv6Cidr{*agent.listen6, 128}, "the agent's own address (always bypassed)"});
    for (const auto& [cidr, why] : bypass) {
      if (cidrContains(cidr, *query.to6)) {
        say("redirect: no: " + formatIpv6(*query.to6) + " is in " + formatCidr(cidr) + " from " + why);
        return out;
      }
    }
    if (!agent.listen6) {
      out.allowed = false;
      say("redirect: refused: the agent has no IPv6 listener (agent.listen6), so an IPv6 connect to a redirected "
          "port fails (counted no_ipv6_listener)");
      return out;
    }
    out.redirected = true;
    say("redirect: yes: to the agent at [" + formatIpv6(*agent.listen6) + "]:" + std::to_string(agent.listen.port));
  } else {
    std::vector<std::pair<Ipv4Cidr, std::string>> bypass;
    for (const auto& c : agent.bypass) bypass.push_back({c, "agent.bypassCidrs"});
    bypass.push_back({*parseIpv4Cidr("127.0.0.0/8"), "loopback (always bypassed)"});
    bypass.push_back({Ipv4Cidr{agent.listen.addressBe, 32}, "the agent's own address (always bypassed)"});
    bypass.push_back({Ipv4Cidr{agent.gatewayAddress.addressBe, 32}, "the gateway's address (always bypassed)"});
    for (const auto& [cidr, why] : bypass) {
      if (inCidr(query.to.addressBe, cidr)) {
        say("redirect: no: " + formatIpv4(query.to.addressBe) + " is in " + formatCidr(cidr) + " from " + why);
        return out;
      }
    }
    out.redirected = true;
    say("redirect: yes: to the agent at " + formatEndpoint(agent.listen));
  }

  // 2. The agent: the SNI against its allowlist.
  if (!query.sni) {
    say("decision: depends on the SNI the app sends (pass --sni NAME)");
    return out;
  }
  auto host = normalizeHostName(*query.sni);
  if (!host) {
    out.allowed = false;
    say("decision: deny: '" + *query.sni + "' is not a valid host name (reason=invalid-sni)");
    return out;
  }
  auto rule = config.agentMatcher().match(*host, query.to.port);
  if (!rule) {
    if (config.outboundPolicy == OutboundPolicy::AllowAny) {
      out.allowed = true;
      say("decision: allow directly to " + to + ": no rule names " + *host +
          " and outboundTrafficPolicy is ALLOW_ANY (not via the gateway)");
    } else {
      out.allowed = false;
      say("decision: deny: no rule allows " + *host + " on port " + std::to_string(query.to.port) +
          " (REGISTRY_ONLY, reason=host-not-allowed)");
    }
    return out;
  }
  say("agent: allow by rule '" + *rule + "': mTLS to the gateway " + formatEndpoint(agent.gatewayAddress) +
      " with SNI " + *host);

  // 3. The gateway checks again and picks where to connect.
  auto gatewayRule = config.gatewayMatcher().match(*host, query.to.port);
  if (!gatewayRule) {
    out.allowed = false;
    say("decision: deny at the gateway: its rules do not allow " + *host + " (result=host-not-allowed)");
    return out;
  }
  out.allowed = true;
  std::string where;
  for (const auto& d : config.routeFor(*gatewayRule, *host, query.to.port).destinations) {
    where += (where.empty() ? "" : ", ") + d.host + ":" + std::to_string(d.port) +
             (d.addressesBe.empty() ? " (DNS)" : " (STATIC)") + " weight " + std::to_string(d.weight);
  }
  say("decision: allow: the gateway (rule '" + *gatewayRule + "') connects to " + where);
  return out;
}

}  // namespace sluice
