// Writes ClientHellos that OpenSSL produces (several shapes) into DIR: the fuzzer's seeds.
#include <fstream>
#include <string>

#include "openssl_client_hello.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const sluice::ClientHelloShape shapes[] = {
      {"www.googleapis.com"},          {},
      {"example.com", TLS1_2_VERSION}, {"split.example.com", 0, 20, 512},
      {"alpn.example.com", 0, 5},      {"public.example.com", 0, 0, 0, 120}};  // ECH
  int n = 0;
  for (const auto& shape : shapes) {
    auto hello = sluice::makeOpenSslClientHello(shape);
    std::ofstream(std::string(argv[1]) + "/openssl-hello-" + std::to_string(n++), std::ios::binary)
        .write(reinterpret_cast<const char*>(hello.data()), static_cast<std::streamsize>(hello.size()));
  }
  return 0;
}
