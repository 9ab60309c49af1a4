// co_spawn for a connection's coroutine: an exception escaping it is logged, not lost
// (asio::detached would swallow it silently).
#pragma once

#include <spdlog/spdlog.h>

#include <exception>

#include "async.h"

namespace sluice {

inline auto logEscapedException(const char* what) {
  return [what](std::exception_ptr error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      spdlog::error("{}: unexpected exception: {}", what, e.what());
    }
  };
}

}  // namespace sluice
