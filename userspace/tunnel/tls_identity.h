// What sluice requires of a mesh certificate, its own or a peer's (the SPIFFE X.509-SVID
// rule: exactly one URI SAN), its validity window, and how one is named in logs
// (URI, serial, expiry in UTC).
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace sluice {

using WallClock = std::chrono::system_clock;

struct CertificateInfo {
  std::vector<std::string> uris;  // URI subject alternative names; DNS and other SANs are not identities
  std::string serial;             // upper-case hex, as `openssl x509 -serial` prints it
  WallClock::time_point notBefore;
  WallClock::time_point notAfter;

  // The identity, if the certificate has exactly one URI SAN; "-" otherwise.
  std::string uri() const { return uris.size() == 1 ? uris.front() : "-"; }
};

std::vector<std::string> uriSans(X509* cert);
CertificateInfo describeCertificate(X509* cert);

// Why this certificate cannot be a daemon's own identity at `now` (not exactly one URI SAN,
// not yet valid, expired), or nullopt.
std::optional<std::string> ownCertificateProblem(const CertificateInfo& info, WallClock::time_point now);

// Installs peer verification on `ctx`: the chain must verify against the CA (OpenSSL's
// check), and the peer's own certificate must carry exactly one URI SAN; otherwise the
// handshake is refused with an error that says so.
void requireOnePeerUriSan(SSL_CTX* ctx, int verifyMode);

// How long before notAfter a certificate is "close to expiry": a third of its lifetime or
// 24 hours, whichever is shorter. A renewal (cert-manager renews at 1/3 of the lifetime
// left, Istio at 1/2) should have happened before this window opens.
std::chrono::seconds expiryWarningWindow(const CertificateInfo& info);

// "2026-11-27T17:30:00Z".
std::string formatUtc(WallClock::time_point when);

}  // namespace sluice
