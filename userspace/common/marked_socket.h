// Opens the sockets the daemons dial out with, carrying the node's socket mark: the
// connect hooks exempt such a socket from the redirect only in the node's network
// namespace (see SL_DEFAULT_SOCKET_MARK in sluice_abi.h), which is how neither the
// agent's tunnels nor the gateway's upstream connections can loop back into sluice.
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "async.h"

namespace sluice {

// mark 0: no mark (tests of the other loop guard only).
inline boost::system::error_code openMarkedSocket(tcp::socket& socket, tcp protocol, uint32_t mark) {
  boost::system::error_code ec;
  socket.open(protocol, ec);
  if (ec || mark == 0) return ec;
  const int value = static_cast<int>(mark);
  if (setsockopt(socket.native_handle(), SOL_SOCKET, SO_MARK, &value, sizeof(value)) != 0) {
    ec = boost::system::error_code(errno, boost::system::system_category());
    boost::system::error_code ignored;
    socket.close(ignored);
  }
  return ec;
}

// At start: a daemon that cannot mark its sockets would fail every dial (or, unmarked,
// loop), so it refuses to start and says how to fix it.
inline void requireSocketMarkPermission(uint32_t mark, const std::string& field) {
  if (mark == 0) return;
  asio::io_context io;
  tcp::socket probe(io);
  if (auto ec = openMarkedSocket(probe, tcp::v4(), mark)) {
    throw std::runtime_error("cannot set SO_MARK " + std::to_string(mark) + " (" + field + "): " + ec.message() +
                             "; the daemon needs CAP_NET_ADMIN (or CAP_NET_RAW on kernel 5.17+)");
  }
}

}  // namespace sluice
