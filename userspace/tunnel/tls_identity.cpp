#include "tls_identity.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <memory>

namespace sluice {
namespace {

WallClock::time_point toTimePoint(const ASN1_TIME* time) {
  std::tm tm{};
  if (!time || ASN1_TIME_to_tm(time, &tm) != 1) return WallClock::time_point{};
  return WallClock::from_time_t(timegm(&tm));
}

std::string serialHex(X509* cert) {
  std::unique_ptr<BIGNUM, decltype(&BN_free)> number(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr),
                                                     BN_free);
  if (!number) return "?";
  char* hex = BN_bn2hex(number.get());
  std::string out = hex ? hex : "?";
  OPENSSL_free(hex);
  return out;
}

int verifyPeer(int preverifyOk, X509_STORE_CTX* store) {
  if (!preverifyOk || X509_STORE_CTX_get_error_depth(store) != 0) return preverifyOk;
  const size_t count = uriSans(X509_STORE_CTX_get_current_cert(store)).size();
  if (count == 1) return 1;
  X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
  // Read back by takeOpensslErrors(), so both daemons' logs say why.
  ERR_raise_data(ERR_LIB_SSL, SSL_R_CERTIFICATE_VERIFY_FAILED,
                 "peer certificate has %zu URI SANs; exactly one (its SPIFFE ID) is required", count);
  return 0;
}

}  // namespace

std::vector<std::string> uriSans(X509* cert) {
  std::vector<std::string> out;
  if (!cert) return out;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)), ASN1_STRING_length(uri));
  }
  GENERAL_NAMES_free(names);
  return out;
}

CertificateInfo describeCertificate(X509* cert) {
  CertificateInfo info;
  info.uris = uriSans(cert);
  info.serial = serialHex(cert);
  info.notBefore = toTimePoint(X509_get0_notBefore(cert));
  info.notAfter = toTimePoint(X509_get0_notAfter(cert));
  return info;
}

std::optional<std::string> ownCertificateProblem(const CertificateInfo& info, WallClock::time_point now) {
  if (info.uris.size() != 1) {
    std::string list;
    for (const auto& uri : info.uris) list += (list.empty() ? " (" : ", ") + uri;
    if (!list.empty()) list += ")";
    return "it has " + std::to_string(info.uris.size()) + " URI SANs" + list +
           "; exactly one (its SPIFFE ID) is required";
  }
  if (now < info.notBefore) return "it is not valid before " + formatUtc(info.notBefore);
  if (now >= info.notAfter) return "it expired at " + formatUtc(info.notAfter);
  return std::nullopt;
}

void requireOnePeerUriSan(SSL_CTX* ctx, int verifyMode) {
  SSL_CTX_set_verify(ctx, verifyMode, verifyPeer);
}

std::chrono::seconds expiryWarningWindow(const CertificateInfo& info) {
  auto third = std::chrono::duration_cast<std::chrono::seconds>(info.notAfter - info.notBefore) / 3;
  return std::min<std::chrono::seconds>(third, std::chrono::hours(24));
}

std::string formatUtc(WallClock::time_point when) {
  std::time_t t = WallClock::to_time_t(when);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

}  // namespace sluice
