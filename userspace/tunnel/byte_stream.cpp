#include "byte_stream.h"

#include <openssl/err.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sluice {

using boost::system::error_code;

namespace {

// At most this many buffers per sendmsg (well under IOV_MAX); the rest go in the next call.
constexpr size_t kMaxIovecs = 64;

// Sends what the socket takes now, from `data` starting at byte `offset` of the whole;
// advances `offset`. Returns an error, would_block when the socket is full, or nothing
// when everything is out.
error_code sendReady(int fd, std::span<const asio::const_buffer> data, size_t& offset) {
  iovec iov[kMaxIovecs];
  for (;;) {
    size_t count = 0;
    size_t skip = offset;
    for (const auto& buffer : data) {
      if (skip >= buffer.size()) {
        skip -= buffer.size();
        continue;
      }
      iov[count].iov_base = const_cast<char*>(static_cast<const char*>(buffer.data()) + skip);
      iov[count].iov_len = buffer.size() - skip;
      skip = 0;
      if (++count == kMaxIovecs) break;
    }
    if (count == 0) return {};
    msghdr message{};
    message.msg_iov = iov;
    message.msg_iovlen = count;
    ssize_t n = ::sendmsg(fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return asio::error::would_block;
      return error_code(errno, boost::system::system_category());
    }
    offset += static_cast<size_t>(n);
  }
}

// The part of `data` past `offset` bytes, as buffers for an async write.
std::vector<asio::const_buffer> after(std::span<const asio::const_buffer> data, size_t offset) {
  std::vector<asio::const_buffer> rest;
  for (const auto& buffer : data) {
    if (offset >= buffer.size()) {
      offset -= buffer.size();
      continue;
    }
    rest.push_back(buffer + offset);
    offset = 0;
  }
  return rest;
}

}  // namespace

// Reads and writes go to the socket at once and wait only when it is not ready. An asio
// operation that completes at once still passes its completion through the event loop's
// queue: one more turn of the loop (an epoll_wait) and a handler per read or write.
IoResult TcpStream::tryReadSome(std::span<uint8_t> buffer) {
  IoResult result;
  if (buffer.empty()) return result;
  ssize_t n;
  do {
    n = ::recv(socket_.native_handle(), buffer.data(), buffer.size(), MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    result.bytes = static_cast<size_t>(n);
  } else if (n == 0) {
    result.error = asio::error::eof;
  } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
    result.error = asio::error::would_block;
  } else {
    result.error = error_code(errno, boost::system::system_category());
  }
  return result;
}

awaitable<IoResult> TcpStream::readSome(std::span<uint8_t> buffer) {
  IoResult result = tryReadSome(buffer);
  if (result.error != asio::error::would_block) co_return result;
  result.error = {};
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
  const asio::const_buffer whole(data.data(), data.size());
  size_t offset = 0;
  error_code ec = sendReady(socket_.native_handle(), std::span<const asio::const_buffer>(&whole, 1), offset);
  if (ec != asio::error::would_block) co_return ec;
  ec.clear();
  co_await asio::async_write(socket_, whole + offset, asio::redirect_error(use_awaitable, ec));
  co_return ec;
}

awaitable<error_code> TcpStream::writeGathered(const std::vector<asio::const_buffer>& data) {
  size_t offset = 0;
  error_code ec = sendReady(socket_.native_handle(), data, offset);
  if (ec != asio::error::would_block) co_return ec;
  ec.clear();
  co_await asio::async_write(socket_, after(data, offset), asio::redirect_error(use_awaitable, ec));
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

namespace {

// At most this much ciphertext waits in a TlsStream's batch; past it OpenSSL is told to
// retry (WANT_WRITE) and the stream sends first. A batch is one writeAll (64 KiB of
// frames and their record overhead) in practice.
constexpr size_t kCipherBatchLimit = 256 * 1024;

int cipherWrite(BIO* bio, const char* data, size_t length, size_t* written) {
  auto* batch = static_cast<TlsStream::CipherBatch*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  *written = 0;
  const size_t queued = batch->bytes.size() - batch->sent;
  if (queued >= kCipherBatchLimit) {
    BIO_set_retry_write(bio);
    return 0;
  }
  if (batch->sent > 0 && (batch->sent == batch->bytes.size() || batch->sent >= kCipherBatchLimit / 4)) {
    batch->bytes.erase(batch->bytes.begin(), batch->bytes.begin() + static_cast<ptrdiff_t>(batch->sent));
    batch->sent = 0;
  }
  const size_t n = std::min(length, kCipherBatchLimit - queued);
  // Same element type both sides: a memmove, not a byte loop.
  const auto* bytes = reinterpret_cast<const uint8_t*>(data);
  batch->bytes.insert(batch->bytes.end(), bytes, bytes + n);
  *written = n;
  return 1;
}

long cipherControl(BIO* bio, int command, long, void*) {
  auto* batch = static_cast<TlsStream::CipherBatch*>(BIO_get_data(bio));
  switch (command) {
    case BIO_CTRL_FLUSH:
      return 1;  // TlsStream sends the batch after every OpenSSL call that may write
    case BIO_CTRL_WPENDING:
      return batch ? static_cast<long>(batch->bytes.size() - batch->sent) : 0;
    default:
      return 0;
  }
}

// Ciphertext for OpenSSL: from the inbox, then (only while the last read filled the
// inbox, so more is likely there) from the socket itself. A read that would block sets
// retry: OpenSSL reports WANT_READ and TlsStream fills the inbox with a pending read.
int inboxRead(BIO* bio, char* out, size_t length, size_t* taken) {
  auto* inbox = static_cast<TlsStream::CipherInbox*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  *taken = 0;
  if (inbox->begin < inbox->end) {
    const size_t n = std::min(length, inbox->end - inbox->begin);
    std::memcpy(out, inbox->bytes.get() + inbox->begin, n);
    inbox->begin += n;
    *taken = n;
    return 1;
  }
  if (inbox->eof) return 0;
  if (!inbox->drained) {
    ssize_t n;
    do {
      n = ::recv(inbox->fd, out, length, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
      *taken = static_cast<size_t>(n);
      return 1;
    }
    if (n == 0) {
      inbox->eof = true;
      return 0;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) return 0;  // errno says why (SSL_ERROR_SYSCALL)
    inbox->drained = true;
  }
  BIO_set_retry_read(bio);
  return 0;
}

long inboxControl(BIO* bio, int command, long, void*) {
  auto* inbox = static_cast<TlsStream::CipherInbox*>(BIO_get_data(bio));
  switch (command) {
    case BIO_CTRL_PENDING:
      return inbox ? static_cast<long>(inbox->end - inbox->begin) : 0;
    case BIO_CTRL_EOF:
      return inbox && inbox->eof && inbox->begin == inbox->end ? 1 : 0;
    default:
      return 0;
  }
}

int cipherCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* cipherBatchMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sluice cipher batch");
    if (!m || BIO_meth_set_write_ex(m, cipherWrite) != 1 || BIO_meth_set_ctrl(m, cipherControl) != 1 ||
        BIO_meth_set_create(m, cipherCreate) != 1) {
      throw std::runtime_error("BIO_meth_new: " + takeOpensslErrors());
    }
    return m;
  }();
  return method;
}

const BIO_METHOD* cipherInboxMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sluice cipher inbox");
    if (!m || BIO_meth_set_read_ex(m, inboxRead) != 1 || BIO_meth_set_ctrl(m, inboxControl) != 1 ||
        BIO_meth_set_create(m, cipherCreate) != 1) {
      throw std::runtime_error("BIO_meth_new: " + takeOpensslErrors());
    }
    return m;
  }();
  return method;
}

// What a pending read holds: small at first (a handshake, an idle tunnel, a peer that
// holds a connection open cost little), one full TLS record and then some once a read
// filled it. A read that fills it hands over to OpenSSL's own reads from the fd.
constexpr size_t kCipherInboxFirstBytes = 4 * 1024;
constexpr size_t kCipherInboxBytes = 16 * 1024 + 512;

}  // namespace

TlsStream::TlsStream(tcp::socket socket, SSL_CTX* ctx, TlsRole role)
    : socket_(std::move(socket)),
      ssl_(SSL_new(ctx)),
      cipher_(std::make_unique<CipherBatch>()),
      inbox_(std::make_unique<CipherInbox>()),
      fillDone_(socket_.get_executor(), asio::steady_timer::time_point::max()) {
  if (!ssl_) throw std::runtime_error("SSL_new: " + takeOpensslErrors());
  socket_.non_blocking(true);
  inbox_->fd = socket_.native_handle();
  // Reads from the inbox fillInbox() fills; writes into the batch that flush() sends.
  BIO* reader = BIO_new(cipherInboxMethod());
  BIO* writer = BIO_new(cipherBatchMethod());
  if (!reader || !writer) {
    BIO_free(reader);
    BIO_free(writer);
    throw std::runtime_error("BIO_new: " + takeOpensslErrors());
  }
  BIO_set_data(reader, inbox_.get());
  BIO_set_data(writer, cipher_.get());
  SSL_set_bio(ssl_.get(), reader, writer);
  if (role == TlsRole::Client) {
    SSL_set_connect_state(ssl_.get());
  } else {
    SSL_set_accept_state(ssl_.get());
  }
}

bool TlsStream::sendQueued(error_code& error) {
  CipherBatch& batch = *cipher_;
  while (batch.sent < batch.bytes.size()) {
    ssize_t n = ::send(socket_.native_handle(), batch.bytes.data() + batch.sent, batch.bytes.size() - batch.sent,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      batch.sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    error = n < 0 ? error_code(errno, boost::system::system_category()) : asio::error::connection_reset;
    return false;
  }
  batch.bytes.clear();
  batch.sent = 0;
  return true;
}

awaitable<error_code> TlsStream::fillInbox() {
  CipherInbox& inbox = *inbox_;
  error_code error;
  if (inbox.begin < inbox.end || inbox.eof) co_return error;
  if (inbox.filling) {
    // The other coroutine's read is pending (the writer, when OpenSSL must read the
    // rest of a post-handshake message): its bytes land in the inbox, not the socket,
    // so wait for that read, not for the socket (which it may already have emptied).
    error_code woken;
    co_await fillDone_.async_wait(asio::redirect_error(use_awaitable, woken));
    co_return inbox.fillError;
  }
  if (!inbox.bytes || (inbox.filled && inbox.capacity < kCipherInboxBytes)) {
    inbox.capacity = inbox.bytes ? kCipherInboxBytes : kCipherInboxFirstBytes;
    inbox.bytes = std::make_unique_for_overwrite<uint8_t[]>(inbox.capacity);
  }
  inbox.begin = inbox.end = 0;
  // While the read is pending the BIO must not read the fd itself: bytes taken then
  // would pass the ones this read already has.
  inbox.drained = true;
  inbox.filling = true;
  // A read, not a readiness wait (see the class comment).
  size_t n = co_await socket_.async_read_some(asio::buffer(inbox.bytes.get(), inbox.capacity),
                                              asio::redirect_error(use_awaitable, error));
  inbox.filling = false;
  if (error == asio::error::eof) {
    inbox.eof = true;
    error.clear();
  } else if (error) {
    if (error != asio::error::operation_aborted) lastError_ = "socket: " + error.message();
  } else {
    inbox.end = n;
    inbox.filled = n == inbox.capacity;
    inbox.drained = !inbox.filled;
  }
  inbox.fillError = error;
  fillDone_.cancel();  // wakes a coroutine that waited for this read
  co_return error;
}

awaitable<error_code> TlsStream::flush() {
  error_code error;
  while (!sendQueued(error)) {
    if (error) {
      lastError_ = "socket: " + error.message();
      co_return error;
    }
    co_await socket_.async_wait(tcp::socket::wait_write, asio::redirect_error(use_awaitable, error));
    if (error) co_return error;
  }
  co_return error;
}

awaitable<bool> TlsStream::waitFor(int sslError, int savedErrno, error_code& error) {
  switch (sslError) {
    case SSL_ERROR_WANT_READ:
      // Whatever this step wrote (a handshake flight) must be out before we wait on the peer.
      if (queuedBytes()) {
        if ((error = co_await flush())) co_return false;
      }
      error = co_await fillInbox();
      co_return !error;
    case SSL_ERROR_WANT_WRITE:
      // The batch is full: send it, then OpenSSL goes on.
      error = co_await flush();
      co_return !error;
    case SSL_ERROR_ZERO_RETURN:
      error = asio::error::eof;
      co_return false;
    case SSL_ERROR_SYSCALL:
      // The _ex calls return 0 for every failure: errno alone tells an end without
      // close_notify (the BIO saw end of stream) from a socket error.
      lastError_ = savedErrno == 0 ? "connection closed without close_notify"
                                   : std::string("socket: ") + std::strerror(savedErrno);
      ERR_clear_error();
      error = savedErrno ? error_code(savedErrno, boost::system::system_category()) : asio::error::connection_reset;
      co_return false;
    default: {
      lastError_ = takeOpensslErrors();
      error = asio::error::connection_aborted;
      // The alert OpenSSL queued tells the peer why, if the socket takes it now.
      error_code ignored;
      sendQueued(ignored);
      co_return false;
    }
  }
}

awaitable<error_code> TlsStream::handshake() {
  error_code error;
  while (true) {
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(ssl_.get());
    int savedErrno = errno;
    if (r == 1) co_return co_await flush();
    if (!co_await waitFor(SSL_get_error(ssl_.get(), r), savedErrno, error)) {
      if (error == asio::error::eof) error = asio::error::connection_aborted;
      co_return error;
    }
  }
}

awaitable<error_code> TlsStream::waitReadable() {
  error_code ec;
  // Decrypted or buffered record bytes are readable without the socket (and fillInbox
  // returns at once while the inbox holds bytes or the end).
  if (SSL_has_pending(ssl_.get())) co_return ec;
  co_return co_await fillInbox();
}

awaitable<IoResult> TlsStream::readSome(std::span<uint8_t> buffer) {
  IoResult result;
  while (true) {
    ERR_clear_error();
    errno = 0;
    size_t n = 0;
    int r = SSL_read_ex(ssl_.get(), buffer.data(), buffer.size(), &n);
    int savedErrno = errno;
    // A read may make OpenSSL write (a KeyUpdate answer): sent when the socket takes it
    // now, else by the next writeAll. A reader never waits on the socket's writability.
    if (queuedBytes()) {
      error_code ignored;
      sendQueued(ignored);
    }
    if (r == 1) {
      result.bytes = n;
      co_return result;
    }
    int sslError = SSL_get_error(ssl_.get(), r);
    if (sslError == SSL_ERROR_WANT_READ) {
      if ((result.error = co_await fillInbox())) co_return result;
      continue;
    }
    if (!co_await waitFor(sslError, savedErrno, result.error)) co_return result;
  }
}

awaitable<error_code> TlsStream::writeBuffered(std::span<const uint8_t> data) {
  error_code error;
  while (!data.empty()) {
    ERR_clear_error();
    errno = 0;
    size_t n = 0;
    int r = SSL_write_ex(ssl_.get(), data.data(), data.size(), &n);
    int savedErrno = errno;
    if (r == 1) {
      data = data.subspan(n);
      continue;
    }
    if (!co_await waitFor(SSL_get_error(ssl_.get(), r), savedErrno, error)) {
      if (error == asio::error::eof) error = asio::error::broken_pipe;
      co_return error;
    }
  }
  co_return error;
}

awaitable<error_code> TlsStream::writeAll(std::span<const uint8_t> data) {
  if (auto error = co_await writeBuffered(data)) co_return error;
  // Every record of this write (and any left before) in as few send()s as the socket allows.
  co_return co_await flush();
}

awaitable<error_code> TlsStream::shutdownSend() {
  error_code error;
  if (sentShutdown_) co_return error;
  while (true) {
    ERR_clear_error();
    errno = 0;
    int r = SSL_shutdown(ssl_.get());
    int savedErrno = errno;
    // 0: our close_notify is out and the peer's not yet read; 1: both. Either way done:
    // calling SSL_shutdown again would wait to read the peer's, which is not ours to do.
    if (r >= 0) {
      sentShutdown_ = true;
      co_return co_await flush();
    }
    if (!co_await waitFor(SSL_get_error(ssl_.get(), r), savedErrno, error)) co_return error;
  }
}

void TlsStream::abort() {
  error_code ignored;
  // The BIO must not read the fd number again: it may belong to a new socket by then.
  inbox_->fd = -1;
  inbox_->drained = true;
  socket_.close(ignored);
}

}  // namespace sluice
