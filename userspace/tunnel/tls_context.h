// OpenSSL contexts for the mesh mTLS between agent and gateway, and peer identities.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "tls_identity.h"

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

// What one read() of a tunnel's socket may take (several TLS records at once).
inline constexpr size_t kTlsReadAheadBytes = 64 * 1024;

// TLS 1.3 only, peer verification against `files.ca` (and exactly one URI SAN on the
// peer's certificate), our chain and key from `files`.
// A server also requires a client certificate. No session resumption: tunnels are few
// and long-lived. Throws std::runtime_error with OpenSSL's reason and the file involved.
SslCtxPtr makeMeshTlsContext(const TlsFiles& files, TlsRole role);

// A daemon's mesh identity as loaded: the TLS context and what its certificate says.
struct MeshCredentials {
  TlsFiles files;
  SslCtxPtr context;
  CertificateInfo certificate;
};

// Makes the context (as makeMeshTlsContext, then `configure`, e.g. ALPN) and checks our
// own certificate: it matches the key, has exactly one URI SAN, and is valid at `now`.
// Throws std::runtime_error naming the file and the reason.
std::shared_ptr<const MeshCredentials> loadMeshCredentials(const TlsFiles& files, TlsRole role,
                                                           const std::function<void(SSL_CTX*)>& configure,
                                                           WallClock::time_point now = WallClock::now());

// The URI subject alternative names of the verified peer certificate.
std::vector<std::string> peerUriSans(SSL* ssl);
// The peer's identity: its URI SAN if that is a spiffe:// ID (verification admitted only
// a certificate with exactly one URI SAN).
std::optional<std::string> peerSpiffeId(SSL* ssl);

// Drains OpenSSL's error queue of this thread into one line (with each error's detail).
std::string takeOpensslErrors();

}  // namespace sluice
