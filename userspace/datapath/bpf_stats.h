// Names and meanings of the kernel counters (enum sl_stat in sluice_abi.h), for
// sluicectl, logs and metrics: made from the same SL_STAT_LIST as the enum.
#pragma once

#include <array>

#include "sluice_abi.h"

namespace sluice {

#define SL_STAT_NAME_ENTRY(suffix, name, help) name,
inline constexpr std::array<const char*, SL_STAT_COUNT> kStatNames = {SL_STAT_LIST(SL_STAT_NAME_ENTRY)};
#undef SL_STAT_NAME_ENTRY

#define SL_STAT_HELP_ENTRY(suffix, name, help) help,
inline constexpr std::array<const char*, SL_STAT_COUNT> kStatHelp = {SL_STAT_LIST(SL_STAT_HELP_ENTRY)};
#undef SL_STAT_HELP_ENTRY

}  // namespace sluice
