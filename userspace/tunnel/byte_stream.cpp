#include "byte_stream.h"

#include <openssl/err.h>

#include <cerrno>
#include <cstring>

namespace sluice {

using boost::system::error_code;

awaitable<IoResult> TcpStream::readSome(std::span<uint8_t> buffer) {
  IoResult result;
  result.bytes = co_await socket_.async_read_some(asio::buffer(buffer.data(), buffer.size()),
                                                  asio::redirect_error(use_awaitable, result.error));
  co_return result;
}

awaitable<error_code> TcpStream::waitReadable() {
  error_code ec;
  co_await socket_.async_wait(tcp::socket::wait_read, asio::redirect_error(use_awaitable, ec));
  co_return ec;
}

awaitable<error_code> TcpStream::writeAll(std::span<const uint8_t> data) {
  error_code ec;
  co_await asio::async_write(socket_, asio::buffer(data.data(), data.size()), asio::redirect_error(use_awaitable, ec));
  co_return ec;
}

awaitable<error_code> TcpStream::shutdownSend() {
  error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  // ENOTCONN: the peer already reset the connection (an HTTP server that closed after
  // its response, then got the client's late close_notify). Nothing is left to end.
  if (ec == asio::error::not_connected) ec.clear();
  co_return ec;
}

void TcpStream::abort() {
  error_code ignored;
  // Linger 0: the peer sees a reset, as the other side of the relay did.
  if (socket_.is_open()) socket_.set_option(asio::socket_base::linger(true, 0), ignored);
  socket_.close(ignored);
}

TlsStream::TlsStream(tcp::socket socket, SSL_CTX* ctx, TlsRole role) : socket_(std::move(socket)), ssl_(SSL_new(ctx)) {
  if (!ssl_) throw std::runtime_error("SSL_new: " + takeOpensslErrors());
  socket_.non_blocking(true);
  SSL_set_fd(ssl_.get(), socket_.native_handle());
  if (role == TlsRole::Client) {
    SSL_set_connect_state(ssl_.get());
  } else {
    SSL_set_accept_state(ssl_.get());
  }
}

awaitable<bool> TlsStream::waitFor(int sslError, int result, error_code& error) {
  switch (sslError) {
    case SSL_ERROR_WANT_READ:
      co_await socket_.async_wait(tcp::socket::wait_read, asio::redirect_error(use_awaitable, error));
      co_return !error;
    case SSL_ERROR_WANT_WRITE:
      co_await socket_.async_wait(tcp::socket::wait_write, asio::redirect_error(use_awaitable, error));
      co_return !error;
    case SSL_ERROR_ZERO_RETURN:
      error = asio::error::eof;
      co_return false;
    case SSL_ERROR_SYSCALL:
      lastError_ = result == 0 || errno == 0 ? "connection closed without close_notify"
                                             : std::string("socket: ") + std::strerror(errno);
      ERR_clear_error();
      error = errno ? error_code(errno, boost::system::system_category()) : asio::error::connection_reset;
      co_return false;
    default:
      lastError_ = takeOpensslErrors();
      error = asio::error::connection_aborted;
      co_return false;
  }
}

awaitable<error_code> TlsStream::handshake() {
  error_code error;
  while (true) {
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(ssl_.get());
    if (r == 1) co_return error_code{};
    if (!co_await waitFor(SSL_get_error(ssl_.get(), r), r, error)) {
      if (error == asio::error::eof) error = asio::error::connection_aborted;
      co_return error;
    }
  }
}

awaitable<error_code> TlsStream::waitReadable() {
  error_code ec;
  // Decrypted or buffered record bytes are readable without the socket.
  if (SSL_has_pending(ssl_.get())) co_return ec;
  co_await socket_.async_wait(tcp::socket::wait_read, asio::redirect_error(use_awaitable, ec));
  co_return ec;
}

awaitable<IoResult> TlsStream::readSome(std::span<uint8_t> buffer) {
  IoResult result;
  while (true) {
    ERR_clear_error();
    errno = 0;
    size_t n = 0;
    int r = SSL_read_ex(ssl_.get(), buffer.data(), buffer.size(), &n);
    if (r == 1) {
      result.bytes = n;
      co_return result;
    }
    if (!co_await waitFor(SSL_get_error(ssl_.get(), r), r, result.error)) co_return result;
  }
}

awaitable<error_code> TlsStream::writeAll(std::span<const uint8_t> data) {
  error_code error;
  while (!data.empty()) {
    ERR_clear_error();
    errno = 0;
    size_t n = 0;
    int r = SSL_write_ex(ssl_.get(), data.data(), data.size(), &n);
    if (r == 1) {
      data = data.subspan(n);
      continue;
    }
    if (!co_await waitFor(SSL_get_error(ssl_.get(), r), r, error)) {
      if (error == asio::error::eof) error = asio::error::broken_pipe;
      co_return error;
    }
  }
  co_return error;
}

awaitable<error_code> TlsStream::shutdownSend() {
  error_code error;
  if (sentShutdown_) co_return error;
  while (true) {
    ERR_clear_error();
    errno = 0;
    int r = SSL_shutdown(ssl_.get());
    // 0: our close_notify is out and the peer's not yet read; 1: both. Either way done:
    // calling SSL_shutdown again would wait to read the peer's, which is not ours to do.
    if (r >= 0) {
      sentShutdown_ = true;
      co_return error_code{};
    }
    if (!co_await waitFor(SSL_get_error(ssl_.get(), r), r, error)) co_return error;
  }
}

void TlsStream::abort() {
  error_code ignored;
  socket_.close(ignored);
}

}  // namespace sluice
