#include "h2_tunnel.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "relay.h"

namespace sluice {

using boost::system::error_code;

namespace {

constexpr size_t kReadBatch = 64 * 1024;
// A connection's read buffer starts small and grows to kReadBatch once a read fills it:
// an idle tunnel connection (or a peer that handshakes and goes silent) holds 4 KiB, not 64.
constexpr size_t kFirstReadBatch = 4 * 1024;
constexpr size_t kWriteBatch = 4 * kTlsRecordPlaintext;  // whole records
// A DATA frame of a writeChunk at least this large is sealed in place; a smaller one is
// copied into the batch, where it shares a record with its neighbours.
constexpr size_t kSealInPlaceBytes = 4 * 1024;
static_assert(TunnelStream::kWriteChunkBytes % kDataFramePayload == 0, "the relay's reads make whole frames");

// A literal value gets its own overload: through `const std::string&` it would point into
// a temporary string gone before nghttp2 reads it (ASan: stack-use-after-scope).
nghttp2_nv header(const char* name, const char* value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value)), std::strlen(name), std::strlen(value),
                    NGHTTP2_NV_FLAG_NONE};
}

nghttp2_nv header(const char* name, const std::string& value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), std::strlen(name), value.size(),
                    NGHTTP2_NV_FLAG_NONE};
}

// A PING's opaque data: the count of PINGs sent, big-endian (any 8 bytes would do; the
// peer echoes them).
std::array<uint8_t, 8> pingOpaque(uint64_t count) {
  std::array<uint8_t, 8> out{};
  for (int i = 7; i >= 0; --i, count >>= 8) out[static_cast<size_t>(i)] = static_cast<uint8_t>(count);
  return out;
}

}  // namespace

// ---- TunnelStream --------------------------------------------------------------

awaitable<void> TunnelStream::waitChange(asio::steady_timer& timer) {
  timer.expires_at(asio::steady_timer::time_point::max());
  error_code ignored;
  co_await timer.async_wait(asio::redirect_error(use_awaitable, ignored));
}

void TunnelStream::wakeAll() {
  if (readWake_) readWake_->cancel();
  if (writeWake_) writeWake_->cancel();
}

void TunnelStream::fail(const std::string& reason, bool tunnelLost) {
  if (!reset_) {
    reset_ = true;
    tunnelLost_ = tunnelLost;
    resetReason_ = reason;
    if (auto hook = std::exchange(resetHook_, nullptr)) hook();
  }
  wakeAll();
}

void TunnelStream::giveBackWindow() {
  if (handedOut_ == 0) return;
  size_t n = handedOut_;
  handedOut_ = 0;
  H2Connection& c = *connection_;
  if (c.closed_) return;
  // nghttp2 queues a WINDOW_UPDATE only once enough was consumed: wake the writer for
  // that, not for every give-back (it would also send a held 200 early).
  const size_t queued = nghttp2_session_get_outbound_queue_size(c.session_);
  if (closed_) {
    nghttp2_session_consume_connection(c.session_, n);
  } else {
    nghttp2_session_consume(c.session_, id_, n);
  }
  if (nghttp2_session_get_outbound_queue_size(c.session_) != queued) c.wakeWriter();
}

void TunnelStream::append(const uint8_t* data, size_t length) {
  receivedBytes_ += length;
  while (length > 0) {
    if (received_.size() == firstChunk_ || received_.back().end == kRelayBufferBytes) {
      received_.push_back(Chunk{BufferPool::local().take()});
    }
    Chunk& chunk = received_.back();
    const size_t take = std::min(length, kRelayBufferBytes - chunk.end);
    std::memcpy(chunk.buffer.span().data() + chunk.end, data, take);
    chunk.end += take;
    data += take;
    length -= take;
  }
}

void TunnelStream::dropReceived() {
  received_.clear();
  firstChunk_ = 0;
  receivedBytes_ = 0;
}

awaitable<error_code> TunnelStream::waitReadable() {
  // The relay calls this after it wrote the previous bytes out: now they may come again.
  giveBackWindow();
  if (!readWake_) readWake_ = std::make_unique<asio::steady_timer>(connection_->writeWake_.get_executor());
  while (!reset_ && receivedBytes_ == 0 && !eof_ && !interrupted_) co_await waitChange(*readWake_);
  if (reset_) co_return asio::error::connection_reset;
  co_return error_code{};
}

awaitable<error_code> TunnelStream::waitBytes() {
  if (auto ec = co_await waitReadable()) co_return ec;
  // A refused CONNECT ends with END_STREAM after its error status: not an origin's FIN.
  if (connection_->role_ == H2Role::Client && status_ != 200) co_return asio::error::connection_refused;
  if (receivedBytes_ == 0) co_return asio::error::eof;
  co_return error_code{};
}

awaitable<IoResult> TunnelStream::takeReceived(std::vector<ReceivedChunk>& out) {
  IoResult result;
  if ((result.error = co_await waitBytes())) co_return result;
  if (firstChunk_ > 0) {
    received_.erase(received_.begin(), received_.begin() + static_cast<ptrdiff_t>(firstChunk_));
    firstChunk_ = 0;
  }
  out.swap(received_);  // `out` came empty: the stream holds no buffer now
  result.bytes = receivedBytes_;
  handedOut_ += receivedBytes_;  // the window comes back once the relay wrote them
  receivedBytes_ = 0;
  co_return result;
}

awaitable<IoResult> TunnelStream::readSome(std::span<uint8_t> buffer) {
  IoResult result;
  if ((result.error = co_await waitBytes())) co_return result;
  size_t n = 0;
  while (n < buffer.size() && firstChunk_ < received_.size()) {
    Chunk& chunk = received_[firstChunk_];
    const size_t take = std::min(chunk.end - chunk.begin, buffer.size() - n);
    std::memcpy(buffer.data() + n, chunk.buffer.span().data() + chunk.begin, take);
    chunk.begin += take;
    n += take;
    if (chunk.begin == chunk.end) ++firstChunk_;  // its buffer goes back to the pool below
  }
  receivedBytes_ -= n;
  handedOut_ += n;
  if (firstChunk_ == received_.size()) {
    // An idle stream holds no buffer: memory follows the bytes in flight.
    received_.clear();
    firstChunk_ = 0;
  } else if (firstChunk_ >= 8) {
    received_.erase(received_.begin(), received_.begin() + static_cast<ptrdiff_t>(firstChunk_));
    firstChunk_ = 0;
  }
  result.bytes = n;
  co_return result;
}

awaitable<error_code> TunnelStream::writeAll(std::span<const uint8_t> data) {
  co_return co_await offer(data);
}

awaitable<error_code> TunnelStream::writeChunk(std::shared_ptr<ReceivedChunk> chunk) {
  const std::span<const uint8_t> data(chunk->buffer.span().data() + chunk->begin, chunk->end - chunk->begin);
  // Without room for the first header the frames are copied, as writeAll's are.
  if (chunk->begin >= kH2FrameHeaderBytes) sendingChunk_ = chunk;
  error_code error = co_await offer(data);
  sendingChunk_.reset();  // a frame not yet sealed holds the chunk itself
  co_return error;
}

awaitable<error_code> TunnelStream::offer(std::span<const uint8_t> data) {
  H2Connection& c = *connection_;
  if (reset_ || c.closed_) co_return asio::error::connection_reset;
  if (sendEof_) co_return asio::error::broken_pipe;
  if (data.empty()) co_return error_code{};
  if (!writeWake_) writeWake_ = std::make_unique<asio::steady_timer>(c.writeWake_.get_executor());
  sending_ = data;
  if (providerAttached_ && deferred_) {
    deferred_ = false;
    nghttp2_session_resume_data(c.session_, id_);
  }
  c.wakeWriter();
  while (!sending_.empty() && !reset_ && !c.closed_) co_await waitChange(*writeWake_);
  if (!sending_.empty()) {
    sending_ = {};
    co_return asio::error::connection_reset;
  }
  co_return error_code{};
}

awaitable<error_code> TunnelStream::shutdownSend() {
  H2Connection& c = *connection_;
  if (reset_ || c.closed_) co_return asio::error::connection_reset;
  if (sendEof_) co_return error_code{};
  sendEof_ = true;
  if (providerAttached_ && deferred_ && !closed_) {
    deferred_ = false;
    nghttp2_session_resume_data(c.session_, id_);
  }
  c.wakeWriter();
  co_return error_code{};
}

void TunnelStream::abort() {
  H2Connection& c = *connection_;
  if (!c.closed_ && !closed_ && !reset_) {
    // An RST submitted while a 200 waits in nghttp2's queue makes nghttp2 drop the 200
    // (the stream is closing): the agent would take the origin's reset for the gateway's
    // trouble and open the stream again elsewhere. The RST follows the 200 (writeLoop).
    if (c.holding_) {
      c.heldResets_.push_back(id_);
    } else {
      nghttp2_submit_rst_stream(c.session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
    }
    c.wakeWriter();
  }
  fail("aborted", false);
}

awaitable<void> TunnelStream::waitResponse() {
  if (!readWake_) readWake_ = std::make_unique<asio::steady_timer>(connection_->writeWake_.get_executor());
  while (!responded_ && !reset_ && !closed_ && !interrupted_) co_await waitChange(*readWake_);
}

void TunnelStream::respond(int status, const std::string& result) {
  H2Connection& c = *connection_;
  if (c.closed_ || closed_ || reset_ || responded_) return;
  responded_ = true;
  status_ = status;
  std::string statusText = std::to_string(status);
  std::vector<nghttp2_nv> headers{header(":status", statusText)};
  if (!result.empty()) headers.push_back(header(kResultHeader, result));
  if (status == 200) {
    nghttp2_data_provider data = c.provider(this);
    providerAttached_ = true;
    nghttp2_submit_response(c.session_, id_, headers.data(), headers.size(), &data);
    c.holdResponse();
    return;
  }
  // The refusal ends our side; the client's END_STREAM or RST closes the stream.
  sendEof_ = true;
  nghttp2_submit_response(c.session_, id_, headers.data(), headers.size(), nullptr);
  c.wakeWriter();
}

// ---- H2Connection --------------------------------------------------------------

H2Connection::H2Connection(std::unique_ptr<TlsStream> tls, H2Role role, H2Settings settings)
    : tls_(std::move(tls)),
      role_(role),
      settings_(settings),
      writeWake_(tls_->socket().get_executor()),
      pingTimer_(tls_->socket().get_executor()),
      holdTimer_(tls_->socket().get_executor()) {
  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose);
  // DATA payloads go from the relay's buffer straight into the TLS batch (readData says
  // how much, sendData copies it once), not through nghttp2's frame buffer.
  nghttp2_session_callbacks_set_send_data_callback(callbacks, sendData);
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  nghttp2_option_set_no_auto_window_update(option, 1);
  // Bound what a peer can make us hold: header blocks, and the HPACK table.
  nghttp2_option_set_max_send_header_block_length(option, 16 * 1024);
  nghttp2_option_set_max_deflate_dynamic_table_size(option, 4096);
  int rv = role == H2Role::Client ? nghttp2_session_client_new2(&session_, callbacks, this, option)
                                  : nghttp2_session_server_new2(&session_, callbacks, this, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);
  if (rv != 0) throw std::runtime_error(std::string("nghttp2 session: ") + nghttp2_strerror(rv));
  std::vector<nghttp2_settings_entry> entries{
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, settings_.streamWindow},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 8192},
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, role == H2Role::Server ? settings_.maxConcurrentStreams : 0}};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, entries.data(), entries.size());
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(settings_.connectionWindow));
}

H2Connection::~H2Connection() {
  nghttp2_session_del(session_);
}

bool H2Connection::canOpen() const {
  if (closed_ || goaway_ || draining_) return false;
  uint32_t limit = nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return streams_.size() < limit;
}

void H2Connection::wakeWriter() {
  writeWake_.cancel();
}

// One timer per connection, armed by the first held 200 and not re-armed by the ones
// behind it: a 200 waits at most responseHold, and a busy tunnel arms it once per period.
void H2Connection::holdResponse() {
  holding_ = true;  // also unheld: until the writer takes it, a reset must not overtake it
  if (settings_.responseHold.count() <= 0) {
    wakeWriter();
    return;
  }
  if (holdArmed_) return;
  holdArmed_ = true;
  holdTimer_.expires_after(settings_.responseHold);
  holdTimer_.async_wait([self = shared_from_this()](const error_code&) {
    self->holdArmed_ = false;
    if (self->holding_) self->wakeWriter();
  });
}

void H2Connection::resumeBatchDeferred() {
  auto ids = std::move(batchDeferred_);
  batchDeferred_.clear();
  for (int32_t id : ids) {
    if (!closed_ && streams_.contains(id)) nghttp2_session_resume_data(session_, id);
  }
}

void H2Connection::drain() {
  draining_ = true;
  finishIfDrained();
}

void H2Connection::goAway() {
  if (closed_ || terminated_) return;
  if (!draining_) {
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                          NGHTTP2_NO_ERROR, nullptr, 0);
    wakeWriter();
  }
  drain();
}

// A drained connection says GOAWAY and ends after its last frame is out (writeLoop),
// never by cutting what is still queued.
void H2Connection::finishIfDrained() {
  if (!draining_ || closed_ || terminated_ || !streams_.empty()) return;
  terminated_ = true;
  nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
  wakeWriter();
}

void H2Connection::close(const std::string& reason) {
  if (closed_) return;
  closed_ = true;
  closeReason_ = reason;
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, stream] : streams) stream->fail("tunnel-lost:" + reason, true);
  for (auto& stream : pendingRequests_) stream->fail("tunnel-lost:" + reason, true);
  pendingRequests_.clear();
  tls_->abort();
  writeWake_.cancel();
  pingTimer_.cancel();
  holdTimer_.cancel();
}

nghttp2_data_provider H2Connection::provider(TunnelStream* stream) {
  nghttp2_data_provider data{};
  data.source.ptr = stream;
  data.read_callback = readData;
  return data;
}

std::shared_ptr<TunnelStream> H2Connection::openConnect(const std::string& authority, const std::string& connectionId) {
  if (role_ != H2Role::Client || !canOpen()) return nullptr;
  auto stream = std::make_shared<TunnelStream>(shared_from_this(), 0);
  std::vector<nghttp2_nv> headers{header(":method", "CONNECT"), header(":authority", authority),
                                  header(kConnectionIdHeader, connectionId)};
  nghttp2_data_provider data = provider(stream.get());
  int32_t id = nghttp2_submit_request(session_, nullptr, headers.data(), headers.size(), &data, stream.get());
  if (id < 0) return nullptr;
  stream->id_ = id;
  stream->providerAttached_ = true;
  streams_[id] = stream;
  wakeWriter();
  return stream;
}

awaitable<void> H2Connection::run() {
  auto self = shared_from_this();
  auto executor = co_await asio::this_coro::executor;
  Signal writerDone(executor);
  Signal pingerDone(executor);
  asio::co_spawn(executor, signalAfter(writeLoop(), writerDone), asio::detached);
  asio::co_spawn(executor, signalAfter(pingLoop(), pingerDone), asio::detached);
  co_await readLoop();
  close(closeReason_.empty() ? "ended" : closeReason_);
  co_await writerDone.wait();
  co_await pingerDone.wait();
}

awaitable<void> H2Connection::readLoop() {
  std::vector<uint8_t> buffer(kFirstReadBatch);
  while (!closed_) {
    IoResult read = co_await tls_->readSome(buffer);
    if (read.error) {
      close(!finishReason_.empty()           ? finishReason_
            : read.error == asio::error::eof ? "peer-closed"
                                             : "read:" + read.error.message());
      break;
    }
    ssize_t rv = nghttp2_session_mem_recv(session_, buffer.data(), read.bytes);
    if (rv < 0) {
      close(std::string("protocol:") + nghttp2_strerror(static_cast<int>(rv)));
      break;
    }
    afterCallbacks();
    wakeWriter();
    if (read.bytes == buffer.size() && buffer.size() < kReadBatch) buffer.resize(kReadBatch);
  }
}

void H2Connection::appendToBatch(const uint8_t* data, size_t length) {
  if (batch_.empty() || batch_.back().chunk) batch_.push_back(BatchPiece{nullptr, out_.size(), 0, {}});
  out_.insert(out_.end(), data, data + length);
  batch_.back().length += length;
  batchBytes_ += length;
}

awaitable<error_code> H2Connection::writeBatch() {
  for (BatchPiece& piece : batch_) {
    std::span<const uint8_t> bytes;
    if (piece.chunk) {
      // The bytes before the payload are the chunk's headroom or the previous frame's
      // tail, which the previous piece has sealed: the header goes there.
      uint8_t* payload = piece.chunk->buffer.span().data() + piece.offset;
      std::memcpy(payload - kH2FrameHeaderBytes, piece.header.data(), kH2FrameHeaderBytes);
      bytes = std::span<const uint8_t>(payload - kH2FrameHeaderBytes, kH2FrameHeaderBytes + piece.length);
    } else {
      bytes = std::span<const uint8_t>(out_.data() + piece.offset, piece.length);
    }
    if (auto ec = co_await tls_->writeBuffered(bytes)) co_return ec;
    piece.chunk.reset();  // sealed: the relay's buffer may go back to the pool
  }
  co_return co_await tls_->writeAll({});
}

void H2Connection::afterCallbacks() {
  graveyard_.clear();
  if (connectionConsume_ && !closed_) {
    nghttp2_session_consume_connection(session_, connectionConsume_);
  }
  connectionConsume_ = 0;
  auto requests = std::move(pendingRequests_);
  pendingRequests_.clear();
  for (auto& stream : requests) {
    if (onRequest && !closed_) onRequest(stream);
  }
  finishIfDrained();
}

awaitable<void> H2Connection::writeLoop() {
  auto self = shared_from_this();
  // However the writer ends, the chunks of unsealed frames go back to this thread's pool now.
  struct DropBatch {
    H2Connection& c;
    ~DropBatch() {
      c.batch_.clear();
      c.out_.clear();
    }
  } dropBatch{*this};
  while (!closed_) {
    out_.clear();
    batch_.clear();
    batchBytes_ = 0;
    while (batchBytes_ < kWriteBatch) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        close(std::string("protocol:") + nghttp2_strerror(static_cast<int>(n)));
        co_return;
      }
      if (n == 0) break;
      appendToBatch(data, static_cast<size_t>(n));
    }
    afterCallbacks();
    if (closed_) break;
    holding_ = false;  // whatever was queued is in the batch (or the session is past it)
    // Resets that waited for a 200: once no frame of ours is queued (an empty batch means
    // none is), the 200 they follow is in the batch or gone before.
    if (!heldResets_.empty() && (batch_.empty() || nghttp2_session_get_outbound_queue_size(session_) == 0)) {
      for (int32_t id : heldResets_) {
        if (streams_.contains(id)) nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
      }
      heldResets_.clear();
      if (batch_.empty()) continue;
    }
    if (!batch_.empty() || tls_->queuedBytes()) {
      if (auto ec = co_await writeBatch()) {
        close("write:" + ec.message());
        break;
      }
      resumeBatchDeferred();
      continue;
    }
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
      // Everything is out: close_notify and FIN, then give the peer a moment to do the
      // same before the socket goes (closing with its bytes unread would reset them).
      co_await tls_->shutdownSend();
      error_code ignored;
      tls_->socket().shutdown(tcp::socket::shutdown_send, ignored);
      finishReason_ = draining_ ? "drained" : "goaway";
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      while (!closed_ && std::chrono::steady_clock::now() < until) {
        writeWake_.expires_at(until);
        co_await writeWake_.async_wait(asio::redirect_error(use_awaitable, ignored));
      }
      close(finishReason_);
      break;
    }
    writeWake_.expires_at(asio::steady_timer::time_point::max());
    error_code ignored;
    co_await writeWake_.async_wait(asio::redirect_error(use_awaitable, ignored));
  }
}

awaitable<void> H2Connection::pingLoop() {
  auto self = shared_from_this();
  while (!closed_) {
    pingTimer_.expires_after(settings_.pingInterval);
    error_code ec;
    co_await pingTimer_.async_wait(asio::redirect_error(use_awaitable, ec));
    if (closed_) break;
    pingOutstanding_ = true;
    const auto opaque = pingOpaque(++pingsSent_);
    nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, opaque.data());
    wakeWriter();
    // The answer ends this wait (onFrameRecv), so the next PING goes an interval after
    // it: a peer that goes silent is noticed within interval + timeout.
    pingTimer_.expires_after(settings_.pingTimeout);
    co_await pingTimer_.async_wait(asio::redirect_error(use_awaitable, ec));
    if (closed_) break;
    if (pingOutstanding_) {
      close("ping-timeout");
      break;
    }
  }
}

// ---- nghttp2 callbacks: record and wake; never call back into the session ----------

int H2Connection::onBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  if (self->role_ != H2Role::Server || frame->hd.type != NGHTTP2_HEADERS ||
      frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    return 0;
  }
  auto stream = std::make_shared<TunnelStream>(self->shared_from_this(), frame->hd.stream_id);
  nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, stream.get());
  self->streams_[frame->hd.stream_id] = std::move(stream);
  return 0;
}

int H2Connection::onHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name, size_t nameLength,
                           const uint8_t* value, size_t valueLength, uint8_t, void*) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto* stream = static_cast<TunnelStream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
  if (!stream) return 0;
  std::string_view n(reinterpret_cast<const char*>(name), nameLength);
  std::string v(reinterpret_cast<const char*>(value), std::min(valueLength, kMaxHeaderValueBytes));
  if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    if (n == ":method") stream->method_ = std::move(v);
    if (n == ":authority") stream->authority_ = std::move(v);
    if (n == kConnectionIdHeader) stream->connectionId_ = std::move(v);
  } else {
    if (n == ":status") stream->status_ = std::atoi(v.c_str());
    if (n == kResultHeader) stream->result_ = std::move(v);
  }
  return 0;
}

int H2Connection::onFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  switch (frame->hd.type) {
    case NGHTTP2_PING:
      // Only the answer to our outstanding PING counts: an ACK with other data (stale, or
      // sent unasked) says nothing about whether the peer still reads what we send.
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) && self->pingOutstanding_ &&
          std::memcmp(frame->ping.opaque_data, pingOpaque(self->pingsSent_).data(), 8) == 0) {
        self->pingOutstanding_ = false;
        ++self->pingsAnswered_;
        self->pingTimer_.cancel();
      }
      return 0;
    case NGHTTP2_GOAWAY:
      // The peer takes no new streams: finish those there are, then end (afterCallbacks).
      self->goaway_ = true;
      self->draining_ = true;
      return 0;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
      break;
    default:
      return 0;
  }
  auto* stream = static_cast<TunnelStream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
  if (!stream) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS) {
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST && self->role_ == H2Role::Server) {
      auto it = self->streams_.find(frame->hd.stream_id);
      if (it != self->streams_.end()) self->pendingRequests_.push_back(it->second);
    } else if (frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
      stream->responded_ = true;
    }
  }
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) stream->eof_ = true;
  stream->wakeAll();
  return 0;
}

int H2Connection::onDataChunk(nghttp2_session* session, uint8_t, int32_t streamId, const uint8_t* data, size_t length,
                              void* user) {
  auto* self = static_cast<H2Connection*>(user);
  auto* stream = static_cast<TunnelStream*>(nghttp2_session_get_stream_user_data(session, streamId));
  if (!stream || stream->reset_) {
    self->connectionConsume_ += length;
    return 0;
  }
  stream->append(data, length);
  stream->bytesReceived_ += length;
  if (stream->readWake_) stream->readWake_->cancel();
  return 0;
}

int H2Connection::onStreamClose(nghttp2_session*, int32_t streamId, uint32_t errorCode, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  auto it = self->streams_.find(streamId);
  if (it == self->streams_.end()) return 0;
  auto stream = std::move(it->second);
  self->streams_.erase(it);
  stream->closed_ = true;
  if (errorCode != NGHTTP2_NO_ERROR || !stream->eof_) {
    // RST_STREAM either way: the bytes not yet relayed are dropped, as a TCP reset drops them.
    self->connectionConsume_ += stream->receivedBytes_ + stream->handedOut_;
    stream->dropReceived();
    stream->handedOut_ = 0;
    stream->fail(errorCode == NGHTTP2_REFUSED_STREAM ? "refused-stream"
                                                     : std::string("stream-reset:") + nghttp2_http2_strerror(errorCode),
                 false);
  }
  stream->wakeAll();
  self->graveyard_.push_back(std::move(stream));
  return 0;
}

ssize_t H2Connection::readData(nghttp2_session*, int32_t streamId, uint8_t*, size_t length, uint32_t* flags,
                               nghttp2_data_source* source, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  auto* stream = static_cast<TunnelStream*>(source->ptr);
  // One TLS write takes one batch; this stream's next frame waits for the next batch.
  // Copied frames end the batch at the latest, so a batch of them is whole records
  // whatever smaller frames (HEADERS, WINDOW_UPDATE) came first in it. A frame of a
  // writeChunk is sealed in place, a record of its own: it keeps its full size (cut to the
  // batch's end, its chunk's rest would go as a tiny frame in a batch of its own), and a
  // batch may end up to one frame past kWriteBatch.
  const bool ownRecord = stream->sendingChunk_ != nullptr;
  const size_t batchRoom =
      self->batchBytes_ + kH2FrameHeaderBytes < kWriteBatch ? kWriteBatch - self->batchBytes_ - kH2FrameHeaderBytes : 0;
  const size_t ready = std::min(length, stream->sending_.size());
  if ((ready == 0 && !stream->sendEof_) || stream->reset_) {  // a reset stream's RST may wait for its 200
    stream->deferred_ = true;                                 // writeAll or shutdownSend resumes it
    return NGHTTP2_ERR_DEFERRED;
  }
  if (batchRoom == 0) {
    self->batchDeferred_.push_back(streamId);
    return NGHTTP2_ERR_DEFERRED;
  }
  const size_t n = std::min({ready, kDataFramePayload, ownRecord ? kDataFramePayload : batchRoom});
  *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (n == stream->sending_.size() && stream->sendEof_) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

int H2Connection::sendData(nghttp2_session*, nghttp2_frame* frame, const uint8_t* frameHeader, size_t length,
                           nghttp2_data_source* source, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  auto* stream = static_cast<TunnelStream*>(source->ptr);
  // Called right after readData for the same frame, in the same mem_send: the bytes are
  // still the writer's. No padding is ever asked for.
  if (frame->data.padlen != 0 || length > stream->sending_.size()) return NGHTTP2_ERR_CALLBACK_FAILURE;
  // In place only with the header's room inside the chunk's buffer (sending_ is the
  // chunk's while writeChunk offers it; checked, as a header written outside would not be).
  const uint8_t* base = stream->sendingChunk_ ? stream->sendingChunk_->buffer.span().data() : nullptr;
  const uint8_t* payload = stream->sending_.data();
  if (base && length >= kSealInPlaceBytes && payload >= base + kH2FrameHeaderBytes &&
      payload + length <= base + kRelayBufferBytes) {
    BatchPiece piece{stream->sendingChunk_, static_cast<size_t>(payload - base), length, {}};
    std::memcpy(piece.header.data(), frameHeader, kH2FrameHeaderBytes);
    self->batch_.push_back(std::move(piece));
    self->batchBytes_ += kH2FrameHeaderBytes + length;
  } else {
    self->appendToBatch(frameHeader, kH2FrameHeaderBytes);
    self->appendToBatch(stream->sending_.data(), length);
  }
  stream->sending_ = stream->sending_.subspan(length);
  if (stream->sending_.empty() && stream->writeWake_) stream->writeWake_->cancel();
  return 0;
}

}  // namespace sluice

namespace sluice {
// The relay writes received DATA to a socket straight from the stream's chunks.
static_assert(HandsOverChunks<TunnelStream, TcpStream>);
// Into a stream it reads whole frames' worth with room for the first header, and hands the
// buffer over; into a socket, a whole buffer, copied out by the write.
static_assert(RelayLayout<TunnelStream>::kTakesChunks && RelayLayout<TunnelStream>::kHeadroom == kH2FrameHeaderBytes &&
              RelayLayout<TunnelStream>::kReadBytes == TunnelStream::kWriteChunkBytes);
static_assert(!RelayLayout<TcpStream>::kTakesChunks && RelayLayout<TcpStream>::kHeadroom == 0 &&
              RelayLayout<TcpStream>::kReadBytes == kRelayBufferBytes);
}  // namespace sluice
