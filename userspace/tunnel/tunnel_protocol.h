// What the agent tells the gateway besides the stream: the host travels as the outer
// TLS SNI (as in Istio's DestinationRule `sni`), the destination port as an ALPN
// protocol id "sluice/port=N", so one gateway listener serves every port.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

inline constexpr std::string_view kPortAlpnPrefix = "sluice/port=";

std::string portAlpn(uint16_t port);
std::optional<uint16_t> parsePortAlpn(std::string_view protocol);

}  // namespace sluice
