// The agent-gateway tunnel: one long-lived mTLS connection carries many app connections,
// each as one HTTP/2 CONNECT stream (nghttp2 over the non-blocking TlsStream). Both ends
// of the protocol live here: the agent opens streams (H2Role::Client), the gateway
// answers them (H2Role::Server). See README "Wire format".
//
// Stream semantics: END_STREAM is a TCP half-close (after every byte before it);
// RST_STREAM is a TCP reset; a lost tunnel (read error, PING timeout, protocol error)
// resets every stream on it. Flow control is manual: received bytes are given back to
// the peer's window (nghttp2_session_consume) only once the relay has written them to
// the other socket, so a slow reader stalls its own stream and nobody else's.
//
// Threading: a connection and its streams live on one io_context thread; nothing here
// is shared across threads.
#pragma once

#include <nghttp2/nghttp2.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "async.h"
#include "byte_stream.h"
#include "relay.h"

namespace sluice {

enum class H2Role { Client, Server };

struct H2Settings {
  uint32_t maxConcurrentStreams = 1024;   // server: SETTINGS_MAX_CONCURRENT_STREAMS
  uint32_t streamWindow = 1u << 20;       // 1 MiB: one stream can fill a fast link
  uint32_t connectionWindow = 32u << 20;  // 32 MiB: bounds what one tunnel buffers in all
  std::chrono::milliseconds pingInterval{10000};
  std::chrono::milliseconds pingTimeout{5000};
  // Server: how long a 200 may wait for the origin's first bytes, so that both leave in
  // one send() (one TLS record; two when those bytes are 4 KiB or more and sealed in
  // place) and the agent wakes once, not twice (a local origin answers within it;
  // a distant one gets its 200 alone, this much later). The agent only ends its response
  // deadline (agent.gateway.responseTimeoutMs, seconds) on the 200.
  std::chrono::microseconds responseHold{5000};
  bool operator==(const H2Settings&) const = default;
};

// Header names of the CONNECT request and the error response.
inline constexpr const char* kConnectionIdHeader = "sluice-connection-id";
inline constexpr const char* kResultHeader = "sluice-result";
inline constexpr size_t kMaxHeaderValueBytes = 512;

// A DATA frame fills one TLS record exactly: 16 KiB of plaintext, the 9-byte frame header
// and the payload. With the payload at the peer's 16 KiB maximum instead, every four
// frames overran four records by 36 bytes, and a stream sent a fifth, tiny record for
// them (its own seal and tag on both ends) per 64 KiB.
inline constexpr size_t kTlsRecordPlaintext = 16 * 1024;
inline constexpr size_t kH2FrameHeaderBytes = 9;
inline constexpr size_t kDataFramePayload = kTlsRecordPlaintext - kH2FrameHeaderBytes;

class H2Connection;

class TunnelStream {
 public:
  TunnelStream(std::shared_ptr<H2Connection> connection, int32_t id) : connection_(std::move(connection)), id_(id) {}
  TunnelStream(const TunnelStream&) = delete;
  TunnelStream& operator=(const TunnelStream&) = delete;

  // The byte-stream interface relayBoth uses (as TcpStream, TlsStream).
  // The relay reads this much at once for writeChunk: whole frames, so whole records,
  // behind room for the first frame's header.
  static constexpr size_t kWriteChunkBytes = 4 * kDataFramePayload;
  static constexpr size_t kWriteHeadroom = kH2FrameHeaderBytes;
  awaitable<boost::system::error_code> waitReadable();
  awaitable<IoResult> readSome(std::span<uint8_t> buffer);
  // readSome without the copy: moves every unread chunk into `out` (empty on entry);
  // the relay writes from them (see pumpChunks).
  awaitable<IoResult> takeReceived(std::vector<ReceivedChunk>& out);
  awaitable<boost::system::error_code> writeAll(std::span<const uint8_t> data);
  // writeAll of bytes the caller gives up, with kWriteHeadroom bytes before them
  // (chunk.begin): a large DATA frame is sealed where its payload is, its header written
  // over the bytes before it (that headroom, or the tail of the frame before, sealed by
  // then), so the payload is not copied. The chunk lives until its last frame is sealed.
  awaitable<boost::system::error_code> writeChunk(std::shared_ptr<ReceivedChunk> chunk);
  awaitable<boost::system::error_code> shutdownSend();  // END_STREAM after what was written
  void abort();                                         // RST_STREAM (CANCEL), if still open

  // Client: waits for the response HEADERS, or for the stream to fail first (status 0).
  awaitable<void> waitResponse();
  int status() const { return status_; }
  const std::string& result() const { return result_; }  // sluice-result of an error response

  // Server: the request, then the answer (200: relay; otherwise END_STREAM with the reason).
  const std::string& method() const { return method_; }
  const std::string& authority() const { return authority_; }
  const std::string& connectionId() const { return connectionId_; }
  void respond(int status, const std::string& result);

  // Makes a pending waitResponse/waitReadable return early (the caller has something
  // else to attend to); until resumeWaits().
  void interruptWaits() {
    interrupted_ = true;
    wakeAll();
  }
  void resumeWaits() { interrupted_ = false; }

  // Runs once when the stream is reset (by the peer, by us, or with its tunnel), for a
  // caller waiting on something other than the stream (the gateway's dial). It must not
  // call into the connection. Null: nothing.
  void onReset(std::function<void()> hook) { resetHook_ = std::move(hook); }

  int32_t id() const { return id_; }
  // Reset by the peer, by us, or by the tunnel's loss; why, for logs.
  bool isReset() const { return reset_; }
  const std::string& resetReason() const { return resetReason_; }
  // The tunnel under the stream ended (as opposed to the stream alone being reset).
  bool tunnelLost() const { return tunnelLost_; }
  bool ended() const { return sendEof_ && eof_; }  // both directions ended cleanly
  uint64_t bytesReceived() const { return bytesReceived_; }
  H2Connection& connection() { return *connection_; }

 private:
  friend class H2Connection;
  awaitable<void> waitChange(asio::steady_timer& timer);
  void wakeAll();
  // What readSome and takeReceived do before taking bytes: waits, then an error, eof or
  // nothing (bytes to take).
  awaitable<boost::system::error_code> waitBytes();
  void giveBackWindow();  // consumes what the relay took since the last call
  void fail(const std::string& reason, bool tunnelLost);

  std::shared_ptr<H2Connection> connection_;
  int32_t id_;
  std::unique_ptr<asio::steady_timer> readWake_;  // created on first wait
  std::unique_ptr<asio::steady_timer> writeWake_;
  // Received, not yet read by the relay: pooled 64 KiB chunks, appended at the back,
  // read from the front (no byte is moved twice; none held once read). Bounded by the
  // stream window: the peer may not send more than we gave back.
  using Chunk = ReceivedChunk;
  std::vector<Chunk> received_;
  size_t firstChunk_ = 0;     // received_[0, firstChunk_) are read
  size_t receivedBytes_ = 0;  // unread bytes in received_
  void append(const uint8_t* data, size_t length);
  void dropReceived();
  size_t handedOut_ = 0;  // read by the relay, window not yet given back
  uint64_t bytesReceived_ = 0;
  // What writeAll offers nghttp2; the caller's memory, valid while writeAll waits.
  std::span<const uint8_t> sending_;
  // Set while writeChunk offers sending_: the memory, which frames sealed in place share.
  std::shared_ptr<ReceivedChunk> sendingChunk_;
  awaitable<boost::system::error_code> offer(std::span<const uint8_t> data);
  bool deferred_ = false;
  bool providerAttached_ = false;
  bool sendEof_ = false;
  bool eof_ = false;
  bool closed_ = false;  // nghttp2 closed the stream
  bool reset_ = false;
  bool tunnelLost_ = false;
  bool responded_ = false;
  bool interrupted_ = false;
  int status_ = 0;
  std::string result_, method_, authority_, connectionId_, resetReason_;
  std::function<void()> resetHook_;
};

class H2Connection : public std::enable_shared_from_this<H2Connection> {
 public:
  // `tls` has completed its handshake (and the caller checked the peer's identity).
  H2Connection(std::unique_ptr<TlsStream> tls, H2Role role, H2Settings settings);
  ~H2Connection();
  H2Connection(const H2Connection&) = delete;
  H2Connection& operator=(const H2Connection&) = delete;

  // Runs the connection until it ends; every stream on it is reset then.
  awaitable<void> run();
  // Client: a CONNECT stream to `authority` ("host:port"); null when the connection
  // cannot take one (closed, going away, at the peer's stream limit).
  std::shared_ptr<TunnelStream> openConnect(const std::string& authority, const std::string& connectionId);
  // Server: called (outside nghttp2's callbacks) for every complete request.
  std::function<void(std::shared_ptr<TunnelStream>)> onRequest;

  void close(const std::string& reason);
  bool isOpen() const { return !closed_; }
  bool canOpen() const;
  bool goingAway() const { return goaway_; }
  size_t streamCount() const { return streams_.size(); }
  const std::string& closeReason() const { return closeReason_; }
  TlsStream& tls() { return *tls_; }
  // Drain: take no new streams, close when the last one ends (rotation, reconfiguration).
  void drain();
  // Server: GOAWAY now (the peer opens no new stream here; one it sent after the last we
  // took is refused, and the agent retries it on another gateway), then drain.
  void goAway();
  bool draining() const { return draining_; }
  uint64_t pingsAnswered() const { return pingsAnswered_; }

 private:
  friend class TunnelStream;
  awaitable<void> readLoop();
  awaitable<void> writeLoop();
  awaitable<void> pingLoop();
  void wakeWriter();
  void holdResponse();    // a 200 waits in the queue for company, at most responseHold
  void afterCallbacks();  // work nghttp2's callbacks left for later
  void finishIfDrained();
  nghttp2_data_provider provider(TunnelStream* stream);

  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame*, void*);
  static int onHeader(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t, const uint8_t*, size_t, uint8_t,
                      void*);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame*, void*);
  static int onDataChunk(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t, void*);
  static int onStreamClose(nghttp2_session*, int32_t, uint32_t, void*);
  static ssize_t readData(nghttp2_session*, int32_t, uint8_t*, size_t, uint32_t*, nghttp2_data_source*, void*);
  static int sendData(nghttp2_session*, nghttp2_frame*, const uint8_t*, size_t, nghttp2_data_source*, void*);
  void resumeBatchDeferred();  // streams readData held back because the batch was full

  std::unique_ptr<TlsStream> tls_;
  H2Role role_;
  H2Settings settings_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, std::shared_ptr<TunnelStream>> streams_;
  std::vector<std::shared_ptr<TunnelStream>> pendingRequests_;  // server: complete, not yet handed out
  std::vector<std::shared_ptr<TunnelStream>> graveyard_;        // closed inside a callback
  size_t connectionConsume_ = 0;  // bytes of dropped streams to give back to the connection window
  asio::steady_timer writeWake_;
  asio::steady_timer pingTimer_;
  asio::steady_timer holdTimer_;
  bool holding_ = false;             // a 200 is queued and no write has taken it yet
  std::vector<int32_t> heldResets_;  // RST_STREAMs that follow a held 200 out
  bool holdArmed_ = false;
  // One batch of frames for one TLS write: pieces in order, each bytes of out_ or a DATA
  // frame sealed where its payload is (a writeChunk's chunk).
  struct BatchPiece {
    std::shared_ptr<ReceivedChunk> chunk;  // null: out_[offset, offset + length)
    size_t offset = 0;                     // in out_, or the payload's in chunk's buffer
    size_t length = 0;                     // payload bytes (in place) or bytes of out_
    std::array<uint8_t, kH2FrameHeaderBytes> header{};
  };
  void appendToBatch(const uint8_t* data, size_t length);
  awaitable<boost::system::error_code> writeBatch();
  std::vector<uint8_t> out_;
  std::vector<BatchPiece> batch_;
  size_t batchBytes_ = 0;
  std::vector<int32_t> batchDeferred_;
  bool closed_ = false;
  bool goaway_ = false;
  bool draining_ = false;
  bool terminated_ = false;  // GOAWAY submitted
  bool pingOutstanding_ = false;
  uint64_t pingsSent_ = 0;  // the outstanding PING carries this count as its opaque data
  uint64_t pingsAnswered_ = 0;
  std::string finishReason_;  // set once our side has ended gracefully
  std::string closeReason_;
};

}  // namespace sluice
