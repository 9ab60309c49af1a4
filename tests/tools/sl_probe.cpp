// sl-probe: a tiny socket client and server for the root tests, printing exactly what the
// kernel says (getpeername, accepted peer, errno) in key=value form. Addresses are
// IPv4 "a.b.c.d:port" or IPv6 "[addr]:port" (v4-mapped "[::ffff:a.b.c.d]:port" makes an
// AF_INET6 socket reach IPv4, as Java does).
//   sl-probe connect ADDR:PORT [--timeout-ms N] [--send TEXT | --hello SNI [--ech]] [--read] [--mark N]
//   sl-probe udp ADDR:PORT [--connect] [--mark N]   one datagram (sendto, or connect then send)
//     --mark N sets SO_MARK before connecting, as an attacker in a pod can (CAP_NET_RAW);
//     a refused setsockopt prints mark=error and exits 3.
//   sl-probe serve ADDR:PORT [--count N] [--timeout-ms N]
//   sl-probe storm ADDR:PORT --count N [--send TEXT | --hello SNI] [--timeout-ms N]
//                                  N connects, each closed at once (after sending); prints counts
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>

namespace {

struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family() const { return storage.ss_family; }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

std::optional<Address> parse(const std::string& text) {
  Address a;
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  int port = std::atoi(text.c_str() + colon + 1);
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    auto* sa = reinterpret_cast<sockaddr_in6*>(&a.storage);
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons(port);
    if (inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &sa->sin6_addr) != 1) return std::nullopt;
    a.length = sizeof(sockaddr_in6);
  } else {
    auto* sa = reinterpret_cast<sockaddr_in*>(&a.storage);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(port);
    if (inet_pton(AF_INET, host.c_str(), &sa->sin_addr) != 1) return std::nullopt;
    a.length = sizeof(sockaddr_in);
  }
  return a;
}

std::string format(const sockaddr_storage& s) {
  char text[INET6_ADDRSTRLEN] = {};
  if (s.ss_family == AF_INET6) {
    auto* sa = reinterpret_cast<const sockaddr_in6*>(&s);
    inet_ntop(AF_INET6, &sa->sin6_addr, text, sizeof(text));
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(sa->sin6_port));
  }
  auto* sa = reinterpret_cast<const sockaddr_in*>(&s);
  inet_ntop(AF_INET, &sa->sin_addr, text, sizeof(text));
  return std::string(text) + ":" + std::to_string(ntohs(sa->sin_port));
}

uint32_t gMark = 0;  // --mark: SO_MARK for the client sockets (0: none)

// Exits 3 if the kernel refuses the mark: the test then knows the attack was not tried.
void applyMark(int fd) {
  if (gMark == 0) return;
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &gMark, sizeof(gMark)) != 0) {
    std::printf("mark=error errno=%s\n", strerrorname_np(errno));
    std::exit(3);
  }
}

int usage() {
  std::fprintf(
      stderr,
      "usage: sl-probe connect ADDR:PORT [--timeout-ms N] [--send TEXT | --hello SNI [--ech]] [--read] [--mark N]\n"
      "       sl-probe udp ADDR:PORT [--connect] [--mark N]\n"
      "       sl-probe serve ADDR:PORT [--count N] [--timeout-ms N]\n"
      "       sl-probe storm ADDR:PORT --count N [--send TEXT | --hello SNI] [--timeout-ms N]\n");
  return 2;
}

// Connects with a timeout; returns the fd, or -1 with errno set.
int connectTo(const Address& target, int timeoutMs) {
  int fd = socket(target.family(), SOCK_STREAM | SOCK_NONBLOCK, 0);
  applyMark(fd);
  int r = connect(fd, target.get(), target.length);
  if (r != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, timeoutMs) != 1) {
      close(fd);
      errno = ETIMEDOUT;
      return -1;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    r = err ? -1 : 0;
    errno = err;
  }
  if (r != 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

int connectCommand(const Address& target, int timeoutMs, const std::string& send, bool read) {
  auto started = std::chrono::steady_clock::now();
  int fd = connectTo(target, timeoutMs);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  if (fd < 0) {
    std::printf("connect=error errno=%s ms=%ld\n", strerrorname_np(errno), static_cast<long>(ms));
    return 1;
  }
  sockaddr_storage peer{}, local{};
  socklen_t len = sizeof(peer);
  getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len);
  len = sizeof(local);
  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
  std::printf("connect=ok peer=%s local=%s\n", format(peer).c_str(), format(local).c_str());
  if (!send.empty() && write(fd, send.data(), send.size()) != static_cast<ssize_t>(send.size())) {
    std::printf("send=error errno=%s\n", strerrorname_np(errno));
  }
  if (read) {
    char buf[4096];
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, timeoutMs) == 1) {
      ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n > 0) {
        std::printf("read=%.*s", static_cast<int>(n), buf);
      } else {
        std::printf("read=%s\n", n == 0 ? "eof" : strerrorname_np(errno));
      }
    } else {
      std::printf("read=timeout\n");
    }
  }
  std::fflush(stdout);
  close(fd);
  return 0;
}

int udpCommand(const Address& target, bool connected) {
  int fd = socket(target.family(), SOCK_DGRAM, 0);
  applyMark(fd);
  const char datagram[] = "quic?";
  if (connected) {
    if (connect(fd, target.get(), target.length) != 0) {
      std::printf("udp-connect=error errno=%s\n", strerrorname_np(errno));
      return 1;
    }
    std::printf("udp-connect=ok\n");
  }
  ssize_t n = connected ? send(fd, datagram, sizeof(datagram), 0)
                        : sendto(fd, datagram, sizeof(datagram), 0, target.get(), target.length);
  if (n < 0) {
    std::printf("send=error errno=%s\n", strerrorname_np(errno));
    return 1;
  }
  std::printf("send=ok\n");
  return 0;
}

int serveCommand(const Address& address, int count, int timeoutMs) {
  int fd = socket(address.family(), SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, address.get(), address.length) != 0 || listen(fd, 4096) != 0) {
    std::printf("serve=error errno=%s\n", strerrorname_np(errno));
    return 1;
  }
  std::printf("serve=listening address=%s\n", format(address.storage).c_str());
  std::fflush(stdout);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  for (int served = 0; served < count;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) != 1) {
      std::printf("serve=timeout served=%d\n", served);
      return 1;
    }
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    int client = accept(fd, reinterpret_cast<sockaddr*>(&peer), &len);
    if (client < 0) continue;
    std::printf("accepted peer=%s\n", format(peer).c_str());
    std::fflush(stdout);
    const char reply[] = "hello from sl-probe\n";
    (void)!write(client, reply, sizeof(reply) - 1);
    close(client);
    ++served;
  }
  return 0;
}

// A minimal TLS 1.2-shaped ClientHello carrying SNI `host`: enough for the agent to
// decide; no real handshake follows. `ech`: with an encrypted_client_hello extension
// (0xfe0d, outer type, filler payload) after the SNI, as an ECH client's outer hello.
std::string clientHello(const std::string& host, bool ech = false) {
  auto u16 = [](size_t v) { return std::string{static_cast<char>(v >> 8), static_cast<char>(v & 0xff)}; };
  std::string sni = std::string(1, '\0') + u16(host.size()) + host;        // host_name entry
  std::string ext = u16(0) + u16(sni.size() + 2) + u16(sni.size()) + sni;  // server_name
  if (ech) ext += u16(0xfe0d) + u16(40) + std::string(1, '\0') + std::string(39, '\x22');
  std::string body = std::string("\x03\x03") + std::string(32, '\x11') + std::string(1, '\0') + u16(2) +
                     std::string("\x13\x01") + std::string("\x01\x00", 2) + u16(ext.size()) + ext;
  std::string handshake = std::string(1, '\x01') + std::string(1, '\0') + u16(body.size()) + body;
  return std::string("\x16\x03\x01") + u16(handshake.size()) + handshake;
}

// Many short connections, each closed right after connect (or after sending TEXT).
int stormCommand(const Address& target, int count, const std::string& send, int timeoutMs) {
  std::map<std::string, int> outcomes;
  for (int i = 0; i < count; ++i) {
    int fd = connectTo(target, timeoutMs);
    if (fd < 0) {
      ++outcomes[std::string("error_") + strerrorname_np(errno)];
      continue;
    }
    if (!send.empty()) (void)!write(fd, send.data(), send.size());
    ++outcomes["connected"];
    close(fd);
  }
  for (auto& [k, v] : outcomes) std::printf("%s=%d\n", k.c_str(), v);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  std::string command = argv[1];
  auto address = parse(argv[2]);
  if (!address) return usage();
  int timeoutMs = 3000, count = 1;
  std::string send, hello;
  bool read = false, connected = false, ech = false;
  for (int i = 3; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--timeout-ms" && i + 1 < argc) {
      timeoutMs = std::stoi(argv[++i]);
    } else if (arg == "--count" && i + 1 < argc) {
      count = std::stoi(argv[++i]);
    } else if (arg == "--send" && i + 1 < argc) {
      send = argv[++i];
    } else if (arg == "--hello" && i + 1 < argc) {
      hello = argv[++i];
    } else if (arg == "--ech") {
      ech = true;
    } else if (arg == "--read") {
      read = true;
    } else if (arg == "--connect") {
      connected = true;
    } else if (arg == "--mark" && i + 1 < argc) {
      gMark = static_cast<uint32_t>(std::stoul(argv[++i], nullptr, 0));
    } else {
      return usage();
    }
  }
  if (command == "connect") {
    return connectCommand(*address, timeoutMs, hello.empty() ? send : clientHello(hello, ech), read);
  }
  if (command == "udp") return udpCommand(*address, connected);
  if (command == "serve") return serveCommand(*address, count, timeoutMs);
  if (command == "storm") return stormCommand(*address, count, hello.empty() ? send : clientHello(hello), timeoutMs);
  return usage();
}
