// `--version` of the three binaries: project version and the git revision built.
#pragma once

#include <string>

#include "sluice_version.h"

namespace sluice {

inline std::string versionText(const std::string& program) {
  return program + " " + SLUICE_VERSION + " (git " + SLUICE_REVISION + ")";
}

}  // namespace sluice
