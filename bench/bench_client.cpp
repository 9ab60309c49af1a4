// sl-bench-client: the load side of bench.sh. Threads with blocking sockets: enough for
// 1..16 concurrent clients, and nothing between the measurement and the kernel.
//   path   ADDR:PORT: connect, send a real ClientHello (made by OpenSSL for --sni), read
//          the origin's short reply, close. Latency: connect start to first reply byte.
//   tls    ADDR:PORT: connect, full TLS handshake (verified with --ca, SNI), one small
//          HTTP request, read the response. Latency: connect start to first response byte.
//   stream ADDR:PORT: --concurrency streams each send the ClientHello then read --bytes.
//   hold   ADDR:PORT: open --concurrency connections (hello sent, reply read), keep them
//          --duration-ms, then close. For memory per idle connection.
// Prints one line: key=value ...
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "openssl_client_hello.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string mode;
  sockaddr_in target{};
  std::string sni = "www.googleapis.com";
  std::string ca;
  int concurrency = 1;
  int durationMs = 3000;
  uint64_t bytes = 1ull << 30;
};

int connectTo(const sockaddr_in& target) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<const sockaddr*>(&target), sizeof(target)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool writeAll(int fd, const void* data, size_t size) {
  auto* p = static_cast<const uint8_t*>(data);
  while (size) {
    ssize_t n = write(fd, p, size);
    if (n <= 0) return false;
    p += n;
    size -= n;
  }
  return true;
}

struct Totals {
  std::mutex lock;
  std::vector<double> latenciesUs;
  std::atomic<uint64_t> done{0}, errors{0}, bytes{0};
  // errors split by whether any byte had come back from the far side (tls mode; in path
  // mode the first byte is the reply, so every error is before it).
  std::atomic<uint64_t> failedBeforeByte{0}, failedAfterByte{0};
};

void pathWorker(const Options& o, const std::vector<uint8_t>& hello, Clock::time_point end, Totals& t) {
  std::vector<double> mine;
  char buf[256];
  while (Clock::now() < end) {
    auto start = Clock::now();
    int fd = connectTo(o.target);
    if (fd < 0 || !writeAll(fd, hello.data(), hello.size()) || read(fd, buf, sizeof(buf)) <= 0) {
      ++t.errors;
      ++t.failedBeforeByte;
      if (fd >= 0) close(fd);
      continue;
    }
    mine.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    close(fd);
    ++t.done;
  }
  std::lock_guard guard(t.lock);
  t.latenciesUs.insert(t.latenciesUs.end(), mine.begin(), mine.end());
}

void tlsWorker(const Options& o, SSL_CTX* ctx, Clock::time_point end, Totals& t) {
  std::vector<double> mine;
  const std::string request = "GET / HTTP/1.1\r\nHost: " + o.sni + "\r\nConnection: close\r\n\r\n";
  char buf[4096];
  while (Clock::now() < end) {
    auto start = Clock::now();
    int fd = connectTo(o.target);
    if (fd < 0) {
      ++t.errors;
      ++t.failedBeforeByte;
      continue;
    }
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, o.sni.c_str());
    SSL_set1_host(ssl, o.sni.c_str());
    bool ok = SSL_connect(ssl) == 1 && SSL_write(ssl, request.data(), request.size()) > 0;
    int n = ok ? SSL_read(ssl, buf, sizeof(buf)) : 0;
    if (n > 0) {
      mine.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
      while (SSL_read(ssl, buf, sizeof(buf)) > 0) {
      }
      ++t.done;
    } else {
      ++t.errors;
      ++(BIO_number_read(SSL_get_rbio(ssl)) > 0 ? t.failedAfterByte : t.failedBeforeByte);
    }
    SSL_free(ssl);
    close(fd);
    ERR_clear_error();
  }
  std::lock_guard guard(t.lock);
  t.latenciesUs.insert(t.latenciesUs.end(), mine.begin(), mine.end());
}

void streamWorker(const Options& o, const std::vector<uint8_t>& hello, Totals& t) {
  int fd = connectTo(o.target);
  if (fd < 0 || !writeAll(fd, hello.data(), hello.size())) {
    ++t.errors;
    if (fd >= 0) close(fd);
    return;
  }
  std::vector<char> buf(256 * 1024);
  uint64_t got = 0;
  while (got < o.bytes) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n <= 0) {
      ++t.errors;
      break;
    }
    got += n;
  }
  t.bytes += got;
  close(fd);
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

int usage() {
  std::fprintf(stderr,
               "usage: sl-bench-client path|tls|stream|hold ADDR:PORT [--sni HOST] [--ca FILE] [--concurrency N]\n"
               "                       [--duration-ms N] [--bytes N]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  Options o;
  o.mode = argv[1];
  std::string target = argv[2];
  auto colon = target.rfind(':');
  o.target.sin_family = AF_INET;
  o.target.sin_port = htons(std::atoi(target.c_str() + colon + 1));
  if (colon == std::string::npos || inet_pton(AF_INET, target.substr(0, colon).c_str(), &o.target.sin_addr) != 1) {
    return usage();
  }
  for (int i = 3; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--sni")
      o.sni = v;
    else if (k == "--ca")
      o.ca = v;
    else if (k == "--concurrency")
      o.concurrency = std::atoi(v.c_str());
    else if (k == "--duration-ms")
      o.durationMs = std::atoi(v.c_str());
    else if (k == "--bytes")
      o.bytes = std::strtoull(v.c_str(), nullptr, 10);
    else
      return usage();
  }
  const auto hello = sluice::makeOpenSslClientHello({o.sni});
  Totals t;
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  const auto end = start + std::chrono::milliseconds(o.durationMs);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (o.mode == "tls") {
    if (o.ca.empty() || SSL_CTX_load_verify_locations(ctx, o.ca.c_str(), nullptr) != 1) return usage();
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);  // every connection a full handshake
  }
  if (o.mode == "path") {
    for (int i = 0; i < o.concurrency; ++i)
      threads.emplace_back(pathWorker, std::cref(o), std::cref(hello), end, std::ref(t));
  } else if (o.mode == "tls") {
    for (int i = 0; i < o.concurrency; ++i) threads.emplace_back(tlsWorker, std::cref(o), ctx, end, std::ref(t));
  } else if (o.mode == "stream") {
    for (int i = 0; i < o.concurrency; ++i)
      threads.emplace_back(streamWorker, std::cref(o), std::cref(hello), std::ref(t));
  } else if (o.mode == "hold") {
    std::vector<int> fds;
    char buf[64];
    for (int i = 0; i < o.concurrency; ++i) {
      int fd = connectTo(o.target);
      if (fd < 0 || !writeAll(fd, hello.data(), hello.size()) || read(fd, buf, sizeof(buf)) <= 0) {
        ++t.errors;
        if (fd >= 0) close(fd);
        continue;
      }
      fds.push_back(fd);
    }
    std::printf("mode=hold held=%zu errors=%llu\n", fds.size(), static_cast<unsigned long long>(t.errors.load()));
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::milliseconds(o.durationMs));
    for (int fd : fds) close(fd);
    return t.errors ? 1 : 0;
  } else {
    return usage();
  }
  for (auto& th : threads) th.join();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  SSL_CTX_free(ctx);
  if (o.mode == "stream") {
    std::printf("mode=stream streams=%d bytes=%llu seconds=%.3f mib_per_s=%.1f errors=%llu\n", o.concurrency,
                static_cast<unsigned long long>(t.bytes.load()), seconds, t.bytes / seconds / (1 << 20),
                static_cast<unsigned long long>(t.errors.load()));
  } else {
    std::printf(
        "mode=%s concurrency=%d conns=%llu seconds=%.3f cps=%.0f p50_us=%.0f p99_us=%.0f errors=%llu "
        "failed_before_byte=%llu failed_after_byte=%llu\n",
        o.mode.c_str(), o.concurrency, static_cast<unsigned long long>(t.done.load()), seconds, t.done / seconds,
        percentile(t.latenciesUs, 0.5), percentile(t.latenciesUs, 0.99),
        static_cast<unsigned long long>(t.errors.load()), static_cast<unsigned long long>(t.failedBeforeByte.load()),
        static_cast<unsigned long long>(t.failedAfterByte.load()));
  }
  return t.done || t.bytes ? 0 : 1;
}
