#include "tls_context.h"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <map>
#include <memory>
#include <mutex>
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

namespace {

// The newest ticket per SNI for one client SSL_CTX (TLS 1.3 does not resume across SNIs).
// Worker threads share the context, so the store takes a lock.
class TicketStore {
 public:
  ~TicketStore() {
    for (auto& [name, session] : sessions_) SSL_SESSION_free(session);
  }
  void put(const std::string& name, SSL_SESSION* session) {
    std::lock_guard lock(mutex_);
    if (sessions_.size() >= kMaxEntries && !sessions_.contains(name)) clear();
    auto& slot = sessions_[name];
    if (slot) SSL_SESSION_free(slot);
    slot = session;
  }
  // Sets the ticket on `ssl` under the lock (SSL_set_session takes its own reference).
  void resume(SSL* ssl, const std::string& name) const {
    std::lock_guard lock(mutex_);
    auto it = sessions_.find(name);
    if (it != sessions_.end()) SSL_set_session(ssl, it->second);
  }

 private:
  void clear() {
    for (auto& [name, session] : sessions_) SSL_SESSION_free(session);
    sessions_.clear();
  }
  static constexpr size_t kMaxEntries = 4096;
  mutable std::mutex mutex_;
  std::map<std::string, SSL_SESSION*> sessions_;
};

int ticketStoreIndex() {
  static const int index = SSL_CTX_get_ex_new_index(
      0, nullptr, nullptr, nullptr,
      [](void*, void* store, CRYPTO_EX_DATA*, int, long, void*) { delete static_cast<TicketStore*>(store); });
  return index;
}

int onNewTicket(SSL* ssl, SSL_SESSION* session) {
  auto* store = static_cast<TicketStore*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ticketStoreIndex()));
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!store || !name) return 0;
  store->put(name, session);
  return 1;  // we keep the reference
}

}  // namespace

void resumeSession(SSL* ssl, const std::string& serverName) {
  auto* store = static_cast<TicketStore*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ticketStoreIndex()));
  if (!store) return;
  store->resume(ssl, serverName);
}

static void check(int ok, const std::string& what) {
  if (ok != 1) throw std::runtime_error(what + ": " + takeOpensslErrors());
}

SslCtxPtr makeMeshTlsContext(const TlsFiles& files, TlsRole role) {
  SslCtxPtr ctx(SSL_CTX_new(role == TlsRole::Client ? TLS_client_method() : TLS_server_method()));
  if (!ctx) throw std::runtime_error("SSL_CTX_new: " + takeOpensslErrors());
  check(SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION), "TLS 1.3 minimum");
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
    SSL_CTX_set_num_tickets(ctx.get(), 1);
    // Required to resume sessions whose client was verified: tickets of another
    // context (another service on the same key) must not resume here.
    static const unsigned char kSessionContext[] = "sluice-gateway";
    check(SSL_CTX_set_session_id_context(ctx.get(), kSessionContext, sizeof(kSessionContext) - 1),
          "session id context");
    SSL_CTX_set_timeout(ctx.get(), kTicketLifetimeSeconds);
  }
  requireOnePeerUriSan(ctx.get(), verify);
  SSL_CTX_set_mode(ctx.get(),
                   SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  if (role == TlsRole::Client) {
    SSL_CTX_set_ex_data(ctx.get(), ticketStoreIndex(), new TicketStore);
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx.get(), onNewTicket);
  } else {
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);  // stateless tickets only
  }
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
