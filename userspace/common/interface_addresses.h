// The addresses of this machine's interfaces (in its network namespace), for the
// address guard: dialing one of them would reach the dialer's own host.
#pragma once

#include <vector>

#include "net_address.h"

namespace sluice {

// Every IPv4 and IPv6 address on every interface (getifaddrs). Throws with the reason.
std::vector<IpAddress> interfaceAddresses();

}  // namespace sluice
