// sluicectl's side of the admin endpoint: one GET with a deadline.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "async.h"

namespace sluice {

struct AdminReply {
  unsigned status = 0;
  std::string body;
};

// GET `target` ("/readyz", "/explain?to=...") from the endpoint. Returns nothing (and
// `error` says why) if nothing answers within `timeout`.
std::optional<AdminReply> adminGet(const tcp::endpoint& endpoint, const std::string& target,
                                   std::chrono::milliseconds timeout, std::string& error);

// Percent-encodes a query value.
std::string urlEncode(const std::string& value);

}  // namespace sluice
