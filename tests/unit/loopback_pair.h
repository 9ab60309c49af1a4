// A connected loopback TCP pair for the relay and stream tests: one end as a TcpStream
// (what the daemons read and write through), the other a plain socket the test drives.
#pragma once

#include <memory>

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

}  // namespace sluice::test
