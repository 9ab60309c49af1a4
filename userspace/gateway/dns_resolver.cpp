#include "dns_resolver.h"

#include <ares.h>
#include <netdb.h>
#include <poll.h>

#include <cstring>
#include <mutex>

namespace sluice {
namespace {

struct Query {
  bool done = false;
  ResolveResult result;
};

void onAddrInfo(void* arg, int status, int, struct ares_addrinfo* info) {
  auto* query = static_cast<Query*>(arg);
  query->done = true;
  if (status != ARES_SUCCESS) {
    query->result.error = ares_strerror(status);
    return;
  }
  // The nodes are the final addresses of the name after c-ares followed any CNAMEs:
  // exactly what the gateway would dial, so what its address guard checks.
  for (auto* node = info ? info->nodes : nullptr; node; node = node->ai_next) {
    if (node->ai_family == AF_INET) {
      uint32_t address;
      std::memcpy(&address, &reinterpret_cast<sockaddr_in*>(node->ai_addr)->sin_addr, sizeof(address));
      query->result.addresses.push_back(IpAddress::fromV4(address));
    } else if (node->ai_family == AF_INET6) {
      Ipv6Address address;
      std::memcpy(address.data(), &reinterpret_cast<sockaddr_in6*>(node->ai_addr)->sin6_addr, address.size());
      query->result.addresses.push_back(IpAddress::fromV6(address));
    }
  }
  ares_freeaddrinfo(info);
  if (query->result.addresses.empty()) query->result.error = "no address";
}

}  // namespace

DnsResolver::DnsResolver(Ipv4Endpoint server, std::chrono::milliseconds timeout) : server_(server), timeout_(timeout) {
  static std::once_flag once;
  std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
}

ResolveResult DnsResolver::resolve(const std::string& host) const {
  ares_options options{};
  options.timeout = static_cast<int>(timeout_.count());
  options.tries = 2;
  options.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
  char lookups[] = "b";  // DNS only: never /etc/hosts of the gateway machine
  options.lookups = lookups;
  ares_channel channel = nullptr;
  int optmask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS | ARES_OPT_LOOKUPS;
  if (int status = ares_init_options(&channel, &options, optmask); status != ARES_SUCCESS) {
    return ResolveResult{{}, std::string("c-ares init: ") + ares_strerror(status)};
  }
  std::string server = formatEndpoint(server_);
  if (int status = ares_set_servers_ports_csv(channel, server.c_str()); status != ARES_SUCCESS) {
    ares_destroy(channel);
    return ResolveResult{{}, "c-ares server " + server + ": " + ares_strerror(status)};
  }
  Query query;
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  ares_getaddrinfo(channel, host.c_str(), nullptr, &hints, onAddrInfo, &query);

  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  while (!query.done) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    ares_socket_t sockets[ARES_GETSOCK_MAXNUM];
    int bits = ares_getsock(channel, sockets, ARES_GETSOCK_MAXNUM);
    pollfd fds[ARES_GETSOCK_MAXNUM];
    int count = 0;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      short events = (ARES_GETSOCK_READABLE(bits, i) ? POLLIN : 0) | (ARES_GETSOCK_WRITABLE(bits, i) ? POLLOUT : 0);
      if (events) fds[count++] = pollfd{sockets[i], events, 0};
    }
    timeval maxWait{left.count() / 1000, static_cast<suseconds_t>((left.count() % 1000) * 1000)};
    timeval wait{};
    timeval* next = ares_timeout(channel, &maxWait, &wait);
    int waitMs = static_cast<int>(next->tv_sec * 1000 + next->tv_usec / 1000);
    poll(fds, count, waitMs > 0 ? waitMs : 1);
    for (int i = 0; i < count; ++i) {
      ares_socket_t readable = (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) ? fds[i].fd : ARES_SOCKET_BAD;
      ares_socket_t writable = (fds[i].revents & POLLOUT) ? fds[i].fd : ARES_SOCKET_BAD;
      if (readable != ARES_SOCKET_BAD || writable != ARES_SOCKET_BAD) ares_process_fd(channel, readable, writable);
    }
    ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
  }
  ares_destroy(channel);  // runs the callback with ARES_EDESTRUCTION if still pending
  if (!query.result.addresses.empty()) return query.result;
  if (query.result.error.empty() || query.result.error == ares_strerror(ARES_EDESTRUCTION)) {
    query.result.error = "timed out after " + std::to_string(timeout_.count()) + " ms";
  }
  return query.result;
}

}  // namespace sluice
