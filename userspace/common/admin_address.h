// Where a daemon's admin endpoint listens unless told otherwise: loopback only, so no pod
// can reach it (a hostNetwork agent's node address is reachable from pods).
#pragma once

namespace sluice {

inline constexpr const char* kDefaultAdminAddress = "127.0.0.1:15020";

}  // namespace sluice
