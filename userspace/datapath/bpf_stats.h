// Names of the kernel counters (enum sl_stat in sluice_abi.h), for sluicectl and logs.
#pragma once

#include <array>

#include "sluice_abi.h"

namespace sluice {

inline constexpr std::array<const char*, SL_STAT_COUNT> kStatNames = {
    "redirected",     "bypassed",         "port_ignored", "agent_socket", "not_configured",
    "storage_failed", "handoff",          "handoff_full", "peername",     "flow_closed_before_accept",
    "quic_blocked",   "no_ipv6_listener", "foreign_mark", "exempt",
};

}  // namespace sluice
