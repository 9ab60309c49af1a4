#include "tunnel_protocol.h"

#include <charconv>

namespace sluice {

std::string portAlpn(uint16_t port) {
  return std::string(kPortAlpnPrefix) + std::to_string(port);
}

std::optional<uint16_t> parsePortAlpn(std::string_view protocol) {
  if (!protocol.starts_with(kPortAlpnPrefix)) return std::nullopt;
  auto digits = protocol.substr(kPortAlpnPrefix.size());
  unsigned value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(value);
}

}  // namespace sluice
