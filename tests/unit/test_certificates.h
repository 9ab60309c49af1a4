// Certificates made in the test with OpenSSL's API: a CA, and leaves with chosen URI and
// DNS SANs, serial and validity, written as PEM files for the loaders under test.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

namespace sluice::test_pki {

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using CertPtr = std::unique_ptr<X509, X509Free>;

inline KeyPtr newKey() {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) throw std::runtime_error("EVP_EC_gen failed");
  return key;
}

struct CertSpec {
  std::string commonName = "test";
  std::string sans;  // "URI:spiffe://a,DNS:b"; empty: no SAN extension
  long serial = 1;
  std::time_t notBefore = std::time(nullptr) - 60;
  std::time_t notAfter = std::time(nullptr) + 3600;
  bool ca = false;
};

inline void addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) throw std::runtime_error("bad extension " + value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// Self-signed if issuer is null.
inline CertPtr makeCertificate(const CertSpec& spec, EVP_PKEY* key, X509* issuer = nullptr,
                               EVP_PKEY* issuerKey = nullptr) {
  CertPtr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), spec.serial);
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), spec.notBefore);
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), spec.notAfter);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(spec.commonName.c_str()),
                             -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  X509_set_pubkey(cert.get(), key);
  X509* signer = issuer ? issuer : cert.get();
  if (spec.ca) {
    addExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
    addExtension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    addExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
    addExtension(cert.get(), signer, NID_key_usage, "critical,digitalSignature");
  }
  if (!spec.sans.empty()) addExtension(cert.get(), signer, NID_subject_alt_name, spec.sans);
  if (!X509_sign(cert.get(), issuerKey ? issuerKey : key, EVP_sha256())) throw std::runtime_error("X509_sign failed");
  return cert;
}

inline void writePem(const std::filesystem::path& path, X509* cert) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f || !PEM_write_X509(f, cert)) throw std::runtime_error("writing " + path.string());
  std::fclose(f);
}

inline void writePem(const std::filesystem::path& path, EVP_PKEY* key) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f || !PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr)) {
    throw std::runtime_error("writing " + path.string());
  }
  std::fclose(f);
}

// A mesh CA in `dir`, and leaves it issues (cert + key written under the given name).
class TestMeshCa {
 public:
  explicit TestMeshCa(std::filesystem::path dir) : dir_(std::move(dir)), key_(newKey()) {
    CertSpec spec;
    spec.commonName = "test mesh CA";
    spec.ca = true;
    spec.serial = 1000;
    cert_ = makeCertificate(spec, key_.get());
    writePem(caFile(), cert_.get());
  }
  std::filesystem::path caFile() const { return dir_ / "mesh-ca.pem"; }

  // Writes NAME.pem and NAME.key (a new key unless `key` is given); returns the cert.
  CertPtr issue(const std::string& name, const CertSpec& spec, EVP_PKEY* key = nullptr) {
    KeyPtr fresh;
    if (!key) {
      fresh = newKey();
      key = fresh.get();
      writePem(dir_ / (name + ".key"), key);
    }
    CertPtr cert = makeCertificate(spec, key, cert_.get(), key_.get());
    writePem(dir_ / (name + ".pem"), cert.get());
    return cert;
  }

 private:
  std::filesystem::path dir_;
  KeyPtr key_;
  CertPtr cert_;
};

}  // namespace sluice::test_pki
