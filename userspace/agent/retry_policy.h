// Which failed CONNECT streams the agent opens again on another gateway. Only streams
// that failed before any byte came back from the origin get here (the forwarder makes
// sure); this decides by why they failed. See README "The tunnel", "Retries".
#pragma once

#include <string_view>

namespace sluice {

// A gateway's error answer to a CONNECT (`:status`, `sluice-result`): true when it is
// that gateway's own trouble (its caps, its resolver, its path to the origin), which
// another gateway may not share; false for a policy or request answer every gateway
// would give again (403 host-not-allowed, 400 bad-*, dns-refused:* by the address guard).
bool retryOnAnotherGateway(int status, std::string_view result);

}  // namespace sluice
