// Writes ClientHellos that OpenSSL produces (several shapes) into DIR: the fuzzer's seeds.
#include <openssl/ssl.h>

#include <fstream>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  struct Shape {
    const char* sni;
    int maxVersion;
    unsigned fragment;
    int alpn;
  } shapes[] = {{"www.googleapis.com", 0, 0, 0}, {nullptr, 0, 0, 0}, {"example.com", TLS1_2_VERSION, 0, 0},
                {"split.example.com", 0, 512, 20}, {"alpn.example.com", 0, 0, 5}};
  int n = 0;
  for (const auto& s : shapes) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (s.maxVersion) SSL_CTX_set_max_proto_version(ctx, s.maxVersion);
    SSL* ssl = SSL_new(ctx);
    BIO* in = BIO_new(BIO_s_mem());
    BIO* out = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, in, out);
    SSL_set_connect_state(ssl);
    if (s.sni) SSL_set_tlsext_host_name(ssl, s.sni);
    if (s.fragment) SSL_set_max_send_fragment(ssl, s.fragment);
    std::string wire;
    for (int i = 0; i < s.alpn; ++i) {
      std::string id = "proto-" + std::to_string(i) + std::string(30, 'x');
      wire += static_cast<char>(id.size()) + id;
    }
    if (!wire.empty()) SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(wire.data()), wire.size());
    SSL_do_handshake(ssl);
    char* data = nullptr;
    long length = BIO_get_mem_data(out, &data);
    std::ofstream(std::string(argv[1]) + "/openssl-hello-" + std::to_string(n++), std::ios::binary).write(data, length);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }
  return 0;
}
