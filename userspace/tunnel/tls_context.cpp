#include "tls_context.h"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <memory>
#include <stdexcept>

namespace sluice {

std::string takeOpensslErrors() {
  std::string out;
  unsigned long code;
  const char* data = nullptr;
  int flags = 0;
  while ((code = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
    if ((flags & ERR_TXT_STRING) && data && *data) out += std::string(" (") + data + ")";
  }
  return out.empty() ? "no OpenSSL error recorded" : out;
}

static void check(int ok, const std::string& what) {
  if (ok != 1) throw std::runtime_error(what + ": " + takeOpensslErrors());
}

SslCtxPtr makeMeshTlsContext(const TlsFiles& files, TlsRole role) {
  SslCtxPtr ctx(SSL_CTX_new(role == TlsRole::Client ? TLS_client_method() : TLS_server_method()));
  if (!ctx) throw std::runtime_error("SSL_CTX_new: " + takeOpensslErrors());
  check(SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION), "TLS 1.3 minimum");
  // AES-128-GCM first (OpenSSL's default puts AES-256 first): ~8% less crypto per byte
  // (openssl speed, 16 KiB records, AES-NI); both ends set it, so tunnels negotiate it.
  check(
      SSL_CTX_set_ciphersuites(ctx.get(), "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"),
      "TLS 1.3 cipher suites");
  check(SSL_CTX_use_certificate_chain_file(ctx.get(), files.cert.c_str()),
        "loading certificate chain " + files.cert.string());
  const std::string mismatch = "private key " + files.key.string() + " does not match " + files.cert.string();
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), files.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    // OpenSSL compares the key with the certificate already loaded; say which pair it was
    // (a certificate and its key replaced one after the other do not match in between).
    bool valuesDiffer = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
    throw std::runtime_error((valuesDiffer ? mismatch : "loading private key " + files.key.string()) + ": " +
                             takeOpensslErrors());
  }
  check(SSL_CTX_check_private_key(ctx.get()), mismatch);
  check(SSL_CTX_load_verify_locations(ctx.get(), files.ca.c_str(), nullptr), "loading CA " + files.ca.string());
  int verify = SSL_VERIFY_PEER;
  if (role == TlsRole::Server) {
    verify |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.ca.c_str());
    if (!names) throw std::runtime_error("reading CA names from " + files.ca.string() + ": " + takeOpensslErrors());
    SSL_CTX_set_client_CA_list(ctx.get(), names);
    // One long-lived tunnel per agent connection slot: nothing to resume, no tickets.
    SSL_CTX_set_num_tickets(ctx.get(), 0);
  }
  requireOnePeerUriSan(ctx.get(), verify);
  // Tunnels are few and busy: keep their record buffers rather than free them per record.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Read ahead into a 64 KiB buffer: one read() takes several records, instead of two
  // read()s (header, then body) per 16 KiB record. TlsStream asks SSL_has_pending, which
  // counts what was read ahead.
  SSL_CTX_set_read_ahead(ctx.get(), 1);
  SSL_CTX_set_default_read_buffer_len(ctx.get(), kTlsReadAheadBytes);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  return ctx;
}

std::shared_ptr<const MeshCredentials> loadMeshCredentials(const TlsFiles& files, TlsRole role,
                                                           const std::function<void(SSL_CTX*)>& configure,
                                                           WallClock::time_point now) {
  auto credentials = std::make_shared<MeshCredentials>();
  credentials->files = files;
  credentials->context = makeMeshTlsContext(files, role);  // includes the key/certificate match
  credentials->certificate = describeCertificate(SSL_CTX_get0_certificate(credentials->context.get()));
  if (auto problem = ownCertificateProblem(credentials->certificate, now)) {
    throw std::runtime_error("certificate " + files.cert.string() + " refused: " + *problem);
  }
  if (configure) configure(credentials->context.get());
  return credentials;
}

std::vector<std::string> peerUriSans(SSL* ssl) {
  return uriSans(SSL_get0_peer_certificate(ssl));
}

std::optional<std::string> peerSpiffeId(SSL* ssl) {
  for (auto& uri : peerUriSans(ssl)) {
    if (uri.starts_with("spiffe://")) return uri;
  }
  return std::nullopt;
}

}  // namespace sluice
