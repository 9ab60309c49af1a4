// OpenSSL contexts for the mesh mTLS between agent and gateway, and peer identities.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.h"

namespace sluice {

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;

enum class TlsRole { Client, Server };

// TLS 1.3 only, peer verification against `files.ca`, our chain and key from `files`.
// A server also requires a client certificate. Throws std::runtime_error with OpenSSL's
// reason and the file involved.
SslCtxPtr makeMeshTlsContext(const TlsFiles& files, TlsRole role);

// The URI subject alternative names of the verified peer certificate.
std::vector<std::string> peerUriSans(SSL* ssl);
// The first spiffe:// URI SAN of the peer, if any.
std::optional<std::string> peerSpiffeId(SSL* ssl);

// Drains OpenSSL's error queue of this thread into one line.
std::string takeOpensslErrors();

}  // namespace sluice
