// Loopback TCP for the unit tests: a connected pair, one end as a TcpStream (what the
// daemons read and write through), the other a plain socket the test drives; and a
// listener whose connects stay pending.
#pragma once

#include <memory>
#include <string>

#include "byte_stream.h"

namespace sluice::test {

inline awaitable<void> connectPair(std::unique_ptr<TcpStream>& stream, tcp::socket& peer) {
  auto executor = co_await asio::this_coro::executor;
  tcp::acceptor acceptor(executor, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  tcp::socket a(executor);
  co_await a.async_connect(acceptor.local_endpoint(), use_awaitable);
  peer = co_await acceptor.async_accept(use_awaitable);
  stream = std::make_unique<TcpStream>(std::move(a));
}

// A listener on `address` that takes no connection: one client fills its queue, and the
// kernel then drops every later SYN to it, so a connect to it stays pending.
struct FullListener {
  FullListener(asio::io_context& io, const std::string& address, uint16_t port) : acceptor(io), filler(io) {
    const tcp::endpoint endpoint(asio::ip::make_address(address), port);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(0);
    filler.connect(acceptor.local_endpoint());
  }
  uint16_t port() const { return acceptor.local_endpoint().port(); }
  tcp::acceptor acceptor;
  tcp::socket filler;
};

}  // namespace sluice::test
