// The first bytes an OpenSSL client sends (its ClientHello), captured from a memory BIO:
// real hellos for the parser's tests, the fuzzer's seeds and the benchmark's path-only mode.
#pragma once

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sluice {

struct ClientHelloShape {
  std::string sni;           // empty: no SNI
  int maxVersion = 0;        // 0: the library's default (TLS 1.3)
  size_t alpnCount = 0;      // extra ALPN ids, to grow the hello
  unsigned maxFragment = 0;  // > 0: OpenSSL splits the hello into records of this size
  // Adds an encrypted_client_hello extension (0xfe0d) with this many payload bytes.
  // OpenSSL 3.0 cannot make ECH; a custom extension puts the extension's bytes in a
  // real hello with correct lengths (the payload is not a valid ECH config: the parser
  // only needs to see the extension).
  size_t echPayload = 0;
};

inline constexpr unsigned kEncryptedClientHelloType = 0xfe0d;

inline int addEchExtension(SSL*, unsigned int, unsigned int, const unsigned char** out, size_t* outlen, X509*, size_t,
                           int*, void* arg) {
  static std::vector<unsigned char> payload;
  payload.assign(*static_cast<size_t*>(arg), 0);
  if (!payload.empty()) payload[0] = 0;  // ECHClientHello type: outer
  *out = payload.data();
  *outlen = payload.size();
  return 1;
}
inline void freeEchExtension(SSL*, unsigned int, unsigned int, const unsigned char*, void*) {}

inline std::vector<uint8_t> makeOpenSslClientHello(const ClientHelloShape& shape) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (shape.maxVersion) SSL_CTX_set_max_proto_version(ctx, shape.maxVersion);
  size_t echPayload = shape.echPayload;
  if (echPayload) {
    SSL_CTX_add_custom_ext(ctx, kEncryptedClientHelloType, SSL_EXT_CLIENT_HELLO, addEchExtension, freeEchExtension,
                           &echPayload, nullptr, nullptr);
  }
  SSL* ssl = SSL_new(ctx);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, in, out);
  SSL_set_connect_state(ssl);
  if (!shape.sni.empty()) SSL_set_tlsext_host_name(ssl, shape.sni.c_str());
  if (shape.alpnCount) {
    std::string wire;
    for (size_t i = 0; i < shape.alpnCount; ++i) {
      std::string id = "protocol-number-" + std::to_string(i) + std::string(40, 'x');
      wire += static_cast<char>(id.size());
      wire += id;
    }
    SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(wire.data()), wire.size());
  }
  if (shape.maxFragment) SSL_set_max_send_fragment(ssl, shape.maxFragment);
  SSL_do_handshake(ssl);  // WANT_READ: the hello is in `out`
  char* data = nullptr;
  long length = BIO_get_mem_data(out, &data);
  std::vector<uint8_t> bytes(data, data + length);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return bytes;
}

}  // namespace sluice
