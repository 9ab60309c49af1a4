// A pure, bounds-checked reader of a TLS ClientHello from the first bytes a client sends.
// It never consumes: the caller keeps the bytes and forwards them unchanged.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace sluice {

enum class HelloStatus {
  NeedMore,  // a valid prefix; read more bytes and call again with all of them
  Done,      // a complete ClientHello was read; `serverName` is set if it carried SNI
  NotTls,    // the bytes are not a TLS handshake record
  Error,     // a TLS handshake that is malformed or larger than allowed
};

struct HelloResult {
  HelloStatus status = HelloStatus::NeedMore;
  std::optional<std::string> serverName;  // the host_name entry, as sent
  std::string error;                      // why, for NotTls and Error
  size_t helloBytes = 0;                  // bytes of records that held the hello (Done)
  // The hello carries encrypted_client_hello (ECH, type 0xfe0d): the real server name is
  // encrypted inside it and `serverName` is only the outer, public name.
  bool encryptedClientHello = false;
};

// Largest TLS record payload (RFC 8446 5.1).
inline constexpr size_t kMaxTlsRecordPayload = 16384;

// `data` is everything received so far. `maxBytes` caps the records read: a hello that
// needs more is an Error, so a client cannot make the caller buffer without bound.
HelloResult parseClientHello(std::span<const uint8_t> data, size_t maxBytes);

const char* toString(HelloStatus status);

}  // namespace sluice
