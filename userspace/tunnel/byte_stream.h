// The two kinds of byte stream a relay joins: plain TCP and TLS over TCP. Both offer
// the same coroutine interface so the relay is written once.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "async.h"
#include "tls_context.h"

namespace sluice {

struct IoResult {
  boost::system::error_code error;  // asio::error::eof on an orderly end of stream
  size_t bytes = 0;
};

class TcpStream {
 public:
  explicit TcpStream(tcp::socket socket) : socket_(std::move(socket)) {}
  // Completes when a read would not block (data, end of stream or an error).
  awaitable<boost::system::error_code> waitReadable();
  awaitable<IoResult> readSome(std::span<uint8_t> buffer);
  // readSome without the wait: asio::error::would_block when no byte is there.
  IoResult tryReadSome(std::span<uint8_t> buffer);
  awaitable<boost::system::error_code> writeAll(std::span<const uint8_t> data);
  // writeAll of several buffers with one sendmsg.
  awaitable<boost::system::error_code> writeGathered(const std::vector<asio::const_buffer>& data);
  // Half-close: sends FIN, keeps reading.
  awaitable<boost::system::error_code> shutdownSend();
  // Ends the connection at once; pending operations complete with an error.
  void abort();
  tcp::socket& socket() { return socket_; }

 private:
  tcp::socket socket_;
};

// TLS driven directly over the non-blocking socket: OpenSSL says which readiness it
// needs; the coroutine waits for exactly that. Unlike asio::ssl::stream this allows
// sending close_notify (half-close) without waiting for the peer's, while reads continue.
// OpenSSL reads ciphertext from an inbox that a pending read fills: a batch of small
// records costs that read and at most one more that finds the socket empty (asio tries a
// read before it waits). OpenSSL reading the fd itself after a readiness wait cost the
// read, its read that found the socket empty and an epoll_ctl to re-arm the wait. After
// a read that filled the inbox OpenSSL reads the fd itself, into its own buffer, until
// it is empty (one more empty read then): the rest of a burst is not copied twice.
// Records OpenSSL writes are gathered (CipherBatch) and sent with one send() per call:
// a 64 KiB write is four records but one syscall, one large TCP segment.
class TlsStream {
 public:
  TlsStream(tcp::socket socket, SSL_CTX* ctx, TlsRole role);
  awaitable<boost::system::error_code> handshake();
  awaitable<boost::system::error_code> waitReadable();
  awaitable<IoResult> readSome(std::span<uint8_t> buffer);
  // Also sends what an earlier call left queued (an empty `data` only does that).
  awaitable<boost::system::error_code> writeAll(std::span<const uint8_t> data);
  // Seals `data` into records that wait in the batch (sent once it is full, or by the
  // next writeAll): one batch, one send(), however many writes made it.
  awaitable<boost::system::error_code> writeBuffered(std::span<const uint8_t> data);
  // Sends close_notify once; the peer sees end of stream, we can still read.
  awaitable<boost::system::error_code> shutdownSend();
  void abort();

  SSL* ssl() { return ssl_.get(); }
  tcp::socket& socket() { return socket_; }
  // OpenSSL's reasons for the last failure, for logs.
  const std::string& lastError() const { return lastError_; }
  // Ciphertext written by OpenSSL, not yet taken by the socket.
  size_t queuedBytes() const { return cipher_->bytes.size() - cipher_->sent; }

  struct CipherBatch {
    std::vector<uint8_t> bytes;
    size_t sent = 0;  // bytes[0, sent) are out
  };
  struct CipherInbox {
    int fd = -1;
    std::unique_ptr<uint8_t[]> bytes;  // allocated by the first read
    size_t capacity = 0;
    size_t begin = 0;  // bytes[begin, end) not yet taken by OpenSSL
    size_t end = 0;
    bool drained = true;  // the socket had no more after the last read
    bool filled = false;  // the last fill took as much as the inbox holds
    bool eof = false;
    bool filling = false;                 // a read into bytes is pending
    boost::system::error_code fillError;  // how the last read ended (not eof: OpenSSL judges that)
  };

 private:
  // Waits for the readiness OpenSSL asked for; false with `error` set otherwise.
  // `savedErrno`: errno right after the OpenSSL call.
  awaitable<bool> waitFor(int sslError, int savedErrno, boost::system::error_code& error);
  // When OpenSSL has taken every ciphertext byte: waits for more and reads it into the
  // inbox. An end of stream is left for OpenSSL to judge (after close_notify or not).
  awaitable<boost::system::error_code> fillInbox();
  // Sends the queued ciphertext, waiting for the socket as needed.
  awaitable<boost::system::error_code> flush();
  // Sends what the socket takes now; true when nothing is left.
  bool sendQueued(boost::system::error_code& error);

  tcp::socket socket_;
  SslPtr ssl_;
  std::unique_ptr<CipherBatch> cipher_;  // OpenSSL's write BIO points at it
  std::unique_ptr<CipherInbox> inbox_;   // its read BIO at this
  asio::steady_timer fillDone_;          // never expires: cancelled when a fill ends
  std::string lastError_;
  bool sentShutdown_ = false;
};

}  // namespace sluice
