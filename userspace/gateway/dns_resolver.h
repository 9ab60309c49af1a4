// Resolves external host names with the DNS server named in the rules (c-ares), not
// the node's resolv.conf, so the gateway's view of a name is what the rules say.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "net_address.h"

namespace sluice {

struct ResolveResult {
  std::vector<IpAddress> addresses;  // every A and AAAA answer, CNAMEs followed
  std::string error;                 // set when addresses is empty
};

class DnsResolver {
 public:
  DnsResolver(Ipv4Endpoint server, std::chrono::milliseconds timeout);
  // Asks for A and AAAA records. Blocks up to the timeout: call it from a worker
  // thread, never the I/O thread.
  ResolveResult resolve(const std::string& host) const;

 private:
  Ipv4Endpoint server_;
  std::chrono::milliseconds timeout_;
};

}  // namespace sluice
