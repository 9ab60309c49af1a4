#include "client_hello.h"

#include <vector>

namespace sluice {
namespace {

constexpr uint8_t kContentHandshake = 22;
constexpr uint8_t kHandshakeClientHello = 1;
constexpr uint16_t kExtensionServerName = 0;
constexpr uint16_t kExtensionEncryptedClientHello = 0xfe0d;
constexpr uint8_t kServerNameHost = 0;
constexpr size_t kRecordHeader = 5;
constexpr size_t kHandshakeHeader = 4;

// Reads big-endian fields; any read past the end marks the cursor failed and yields 0.
class Cursor {
 public:
  explicit Cursor(std::span<const uint8_t> data) : data_(data) {}
  bool ok() const { return ok_; }
  size_t remaining() const { return ok_ ? data_.size() - pos_ : 0; }
  uint32_t u8() { return take(1); }
  uint32_t u16() { return take(2); }
  uint32_t u24() { return take(3); }
  std::span<const uint8_t> bytes(size_t n) {
    if (!ok_ || n > data_.size() - pos_) {
      ok_ = false;
      return {};
    }
    auto out = data_.subspan(pos_, n);
    pos_ += n;
    return out;
  }
  void skip(size_t n) { bytes(n); }

 private:
  uint32_t take(size_t n) {
    auto b = bytes(n);
    uint32_t value = 0;
    for (uint8_t byte : b) value = (value << 8) | byte;
    return value;
  }
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
  bool ok_ = true;
};

HelloResult fail(HelloStatus status, std::string why) {
  HelloResult r;
  r.status = status;
  r.error = std::move(why);
  return r;
}

HelloResult parseServerNameExtension(std::span<const uint8_t> ext, HelloResult result) {
  Cursor c(ext);
  size_t listLength = c.u16();
  if (!c.ok() || listLength != c.remaining() || listLength == 0) {
    return fail(HelloStatus::Error, "server_name extension: bad list length");
  }
  while (c.remaining() > 0) {
    uint32_t type = c.u8();
    size_t length = c.u16();
    auto name = c.bytes(length);
    if (!c.ok()) return fail(HelloStatus::Error, "server_name extension: truncated entry");
    if (type != kServerNameHost) continue;
    if (result.serverName) return fail(HelloStatus::Error, "server_name: two host_name entries");
    if (length == 0) return fail(HelloStatus::Error, "server_name: empty host_name");
    for (uint8_t ch : name) {
      if (ch <= 0x20 || ch >= 0x7f) return fail(HelloStatus::Error, "server_name: non-printable byte in host_name");
    }
    result.serverName = std::string(name.begin(), name.end());
  }
  return result;
}

// `body` is the ClientHello message without its 4-byte handshake header.
HelloResult parseHelloBody(std::span<const uint8_t> body) {
  Cursor c(body);
  uint32_t legacyVersion = c.u16();
  c.skip(32);  // random
  size_t sessionIdLength = c.u8();
  c.skip(sessionIdLength);
  size_t cipherSuitesLength = c.u16();
  c.skip(cipherSuitesLength);
  size_t compressionLength = c.u8();
  c.skip(compressionLength);
  if (!c.ok()) return fail(HelloStatus::Error, "ClientHello truncated before extensions");
  if ((legacyVersion >> 8) != 3) return fail(HelloStatus::Error, "ClientHello: unknown version");
  if (sessionIdLength > 32) return fail(HelloStatus::Error, "ClientHello: session id over 32 bytes");
  if (cipherSuitesLength < 2 || cipherSuitesLength % 2 != 0) {
    return fail(HelloStatus::Error, "ClientHello: bad cipher suites length");
  }
  if (compressionLength < 1) return fail(HelloStatus::Error, "ClientHello: no compression methods");

  HelloResult result;
  result.status = HelloStatus::Done;
  if (c.remaining() == 0) return result;  // no extensions at all: no SNI
  size_t extensionsLength = c.u16();
  if (!c.ok() || extensionsLength != c.remaining()) {
    return fail(HelloStatus::Error, "ClientHello: extensions length does not match the message");
  }
  bool sawServerName = false;
  while (c.remaining() > 0) {
    uint32_t type = c.u16();
    size_t length = c.u16();
    auto ext = c.bytes(length);
    if (!c.ok()) return fail(HelloStatus::Error, "ClientHello: truncated extension");
    if (type == kExtensionEncryptedClientHello) result.encryptedClientHello = true;
    if (type != kExtensionServerName) continue;
    if (sawServerName) return fail(HelloStatus::Error, "ClientHello: two server_name extensions");
    sawServerName = true;
    result = parseServerNameExtension(ext, result);
    if (result.status != HelloStatus::Done) return result;
  }
  return result;
}

}  // namespace

HelloResult parseClientHello(std::span<const uint8_t> data, size_t maxBytes) {
  // The handshake message may span several records; gather their payloads. The common
  // case is one record, which is parsed in place with no copy.
  std::vector<uint8_t> gathered;
  std::span<const uint8_t> handshake;
  size_t pos = 0;
  while (true) {
    if (data.size() - pos < kRecordHeader) {
      // Reject non-TLS as early as the first byte so plaintext fails fast.
      if (data.size() > pos && data[pos] != kContentHandshake) {
        return fail(HelloStatus::NotTls, "first byte is not a TLS handshake record");
      }
      if (data.size() > pos + 1 && data[pos + 1] != 3) {
        return fail(HelloStatus::NotTls, "record version is not TLS");
      }
      break;
    }
    const uint8_t* h = data.data() + pos;
    if (h[0] != kContentHandshake) {
      return fail(pos == 0 ? HelloStatus::NotTls : HelloStatus::Error, "record type is not handshake");
    }
    if (h[1] != 3) return fail(pos == 0 ? HelloStatus::NotTls : HelloStatus::Error, "record version is not TLS");
    size_t length = (size_t(h[3]) << 8) | h[4];
    if (length == 0 || length > kMaxTlsRecordPayload) {
      return fail(HelloStatus::Error, "handshake record length out of range");
    }
    if (pos + kRecordHeader + length > maxBytes) {
      return fail(HelloStatus::Error, "ClientHello larger than " + std::to_string(maxBytes) + " bytes");
    }
    if (data.size() - pos - kRecordHeader < length) break;  // record incomplete
    auto payload = data.subspan(pos + kRecordHeader, length);
    pos += kRecordHeader + length;
    if (handshake.empty() && gathered.empty()) {
      handshake = payload;
    } else {
      if (gathered.empty()) gathered.assign(handshake.begin(), handshake.end());
      gathered.insert(gathered.end(), payload.begin(), payload.end());
      handshake = gathered;
    }
    if (handshake.size() >= kHandshakeHeader) {
      if (handshake[0] != kHandshakeClientHello) {
        return fail(HelloStatus::Error, "first handshake message is not a ClientHello");
      }
      size_t messageLength = (size_t(handshake[1]) << 16) | (size_t(handshake[2]) << 8) | handshake[3];
      if (kHandshakeHeader + messageLength > maxBytes) {
        return fail(HelloStatus::Error, "ClientHello larger than " + std::to_string(maxBytes) + " bytes");
      }
      if (handshake.size() >= kHandshakeHeader + messageLength) {
        HelloResult result = parseHelloBody(handshake.subspan(kHandshakeHeader, messageLength));
        if (result.status == HelloStatus::Done) result.helloBytes = pos;
        return result;
      }
    }
  }
  if (data.size() >= maxBytes) {
    return fail(HelloStatus::Error, "ClientHello larger than " + std::to_string(maxBytes) + " bytes");
  }
  HelloResult more;
  more.status = HelloStatus::NeedMore;
  return more;
}

const char* toString(HelloStatus status) {
  switch (status) {
    case HelloStatus::NeedMore:
      return "need-more";
    case HelloStatus::Done:
      return "done";
    case HelloStatus::NotTls:
      return "not-tls";
    case HelloStatus::Error:
      return "error";
  }
  return "unknown";
}

}  // namespace sluice
