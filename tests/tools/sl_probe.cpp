// sl-probe: a tiny socket client and server for the root tests, printing exactly what the
// kernel says (getpeername, accepted peer, errno) in key=value form.
//   sl-probe connect ADDR:PORT [--timeout-ms N] [--send TEXT] [--read]
//   sl-probe serve ADDR:PORT [--count N] [--timeout-ms N]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "net_address.h"

using namespace sluice;

namespace {

sockaddr_in toSockaddr(const Ipv4Endpoint& e) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = e.addressBe;
  sa.sin_port = htons(e.port);
  return sa;
}

std::string fromSockaddr(const sockaddr_in& sa) {
  return formatEndpoint(Ipv4Endpoint{sa.sin_addr.s_addr, ntohs(sa.sin_port)});
}

int usage() {
  std::fprintf(stderr,
               "usage: sl-probe connect ADDR:PORT [--timeout-ms N] [--send TEXT] [--read]\n"
               "       sl-probe serve ADDR:PORT [--count N] [--timeout-ms N]\n");
  return 2;
}

int connectCommand(const Ipv4Endpoint& target, int timeoutMs, const std::string& send, bool read) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_in sa = toSockaddr(target);
  int r = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  if (r != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, timeoutMs) != 1) {
      std::printf("connect=error errno=ETIMEDOUT\n");
      return 1;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    errno = err;
    r = err ? -1 : 0;
  }
  if (r != 0) {
    std::printf("connect=error errno=%s\n", strerrorname_np(errno));
    return 1;
  }
  sockaddr_in peer{}, local{};
  socklen_t len = sizeof(peer);
  getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len);
  len = sizeof(local);
  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
  std::printf("connect=ok peer=%s local=%s\n", fromSockaddr(peer).c_str(), fromSockaddr(local).c_str());
  if (!send.empty()) {
    if (write(fd, send.data(), send.size()) != static_cast<ssize_t>(send.size())) {
      std::printf("send=error errno=%s\n", strerrorname_np(errno));
    }
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

int serveCommand(const Ipv4Endpoint& address, int count, int timeoutMs) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sa = toSockaddr(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || listen(fd, 64) != 0) {
    std::printf("serve=error errno=%s\n", strerrorname_np(errno));
    return 1;
  }
  std::printf("serve=listening address=%s\n", formatEndpoint(address).c_str());
  std::fflush(stdout);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  for (int served = 0; served < count;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) != 1) {
      std::printf("serve=timeout served=%d\n", served);
      return 1;
    }
    sockaddr_in peer{};
    socklen_t len = sizeof(peer);
    int client = accept(fd, reinterpret_cast<sockaddr*>(&peer), &len);
    if (client < 0) continue;
    std::printf("accepted peer=%s\n", fromSockaddr(peer).c_str());
    std::fflush(stdout);
    const char reply[] = "hello from sl-probe\n";
    (void)!write(client, reply, sizeof(reply) - 1);
    close(client);
    ++served;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  std::string command = argv[1];
  auto endpoint = parseIpv4Endpoint(argv[2]);
  if (!endpoint) return usage();
  int timeoutMs = 3000, count = 1;
  std::string send;
  bool read = false;
  for (int i = 3; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--timeout-ms" && i + 1 < argc) {
      timeoutMs = std::stoi(argv[++i]);
    } else if (arg == "--count" && i + 1 < argc) {
      count = std::stoi(argv[++i]);
    } else if (arg == "--send" && i + 1 < argc) {
      send = argv[++i];
    } else if (arg == "--read") {
      read = true;
    } else {
      return usage();
    }
  }
  if (command == "connect") return connectCommand(*endpoint, timeoutMs, send, read);
  if (command == "serve") return serveCommand(*endpoint, count, timeoutMs);
  return usage();
}
