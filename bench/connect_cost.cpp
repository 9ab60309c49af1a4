// ns per connect() syscall to ADDR:PORT: a non-blocking connect, so what is timed is the
// work done inside the call (cgroup hooks, sockops, netfilter, building and sending the
// SYN), not the round trip. Each socket is then closed with a RST (linger 0).
//   sl-connect-cost ADDR:PORT COUNT ROUNDS   prints the median and min/max over rounds
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: sl-connect-cost ADDR:PORT COUNT ROUNDS\n");
    return 2;
  }
  std::string target = argv[1];
  auto colon = target.rfind(':');
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(std::atoi(target.c_str() + colon + 1));
  if (colon == std::string::npos || inet_pton(AF_INET, target.substr(0, colon).c_str(), &sa.sin_addr) != 1) {
    std::fprintf(stderr, "bad address %s\n", argv[1]);
    return 2;
  }
  const int count = std::atoi(argv[2]), rounds = std::atoi(argv[3]);
  std::vector<double> perRound;
  linger reset{1, 0};
  for (int r = 0; r < rounds; ++r) {
    std::chrono::nanoseconds inside{0};
    for (int i = 0; i < count; ++i) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
      auto start = std::chrono::steady_clock::now();
      connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
      inside += std::chrono::steady_clock::now() - start;
      close(fd);
    }
    perRound.push_back(static_cast<double>(inside.count()) / count);
  }
  std::sort(perRound.begin(), perRound.end());
  std::printf("median_ns=%.0f min_ns=%.0f max_ns=%.0f count=%d rounds=%d\n", perRound[perRound.size() / 2],
              perRound.front(), perRound.back(), count, rounds);
  return 0;
}
