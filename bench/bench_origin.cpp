// sl-bench-origin: plain TCP origins for the path-only benchmark, one epoll thread.
//   reply ADDR:PORT   on the first bytes, answer "ok\n"; close when the client closes
//   stream ADDR:PORT  on the first bytes, send data until the client closes
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: sl-bench-origin reply|stream ADDR:PORT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  const bool stream = std::string(argv[1]) == "stream";
  std::string target = argv[2];
  auto colon = target.rfind(':');
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(std::atoi(target.c_str() + colon + 1));
  inet_pton(AF_INET, target.substr(0, colon).c_str(), &sa.sin_addr);
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(listener, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || listen(listener, 4096) != 0) {
    std::perror("bind/listen");
    return 1;
  }
  int ep = epoll_create1(0);
  epoll_event ev{EPOLLIN, {.fd = listener}};
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
  std::unordered_map<int, bool> streaming;  // fd -> sending data
  std::vector<char> chunk(256 * 1024, 'x');
  char buf[16384];
  epoll_event events[256];
  while (true) {
    int n = epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == listener) {
        int c;
        while ((c = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK)) >= 0) {
          epoll_event cev{EPOLLIN, {.fd = c}};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
          streaming[c] = false;
        }
        continue;
      }
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
          epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
          close(fd);
          streaming.erase(fd);
          continue;
        }
        if (r > 0 && !streaming[fd]) {
          if (stream) {
            streaming[fd] = true;
            epoll_event sev{EPOLLIN | EPOLLOUT, {.fd = fd}};
            epoll_ctl(ep, EPOLL_CTL_MOD, fd, &sev);
          } else {
            (void)!write(fd, "ok\n", 3);
            streaming[fd] = true;  // answered; wait for the client to close
          }
        }
      }
      if (stream && (events[i].events & EPOLLOUT) && streaming.count(fd)) {
        while (write(fd, chunk.data(), chunk.size()) > 0) {
        }
      }
    }
  }
}
