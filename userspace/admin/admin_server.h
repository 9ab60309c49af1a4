// The admin HTTP endpoint of a daemon (--admin-address): GET /metrics, /healthz,
// /readyz, /config. Boost.Beast on the daemon's control io_context. Handlers run on that
// thread and must read data-path state thread-safely (atomics, prometheus-cpp metrics).
// Each request gets a bounded header (8 KiB), no body, a 5 s deadline and one response;
// the connection then closes. Out of descriptors, it still answers, one request at a time
// (a descriptor is kept in reserve for it).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "admin_address.h"
#include "async.h"
#include "fd_limits.h"

namespace sluice {

struct AdminResponse {
  unsigned status = 200;
  std::string contentType = "text/plain; charset=utf-8";
  std::string body;
};

struct AdminRequest {
  std::string path;
  std::map<std::string, std::string> query;  // decoded ?key=value&... parameters
};

// "127.0.0.1:15020", "[::1]:15020", "0.0.0.0:15020". Throws std::runtime_error naming it.
tcp::endpoint parseAdminAddress(const std::string& text);

class AdminServer {
 public:
  using Handler = std::function<AdminResponse(const AdminRequest&)>;

  AdminServer(asio::io_context& io, tcp::endpoint endpoint);
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;
  void route(const std::string& path, Handler handler) { routes_[path] = std::move(handler); }
  void route(const std::string& path, std::function<AdminResponse()> handler) {
    routes_[path] = [handler = std::move(handler)](const AdminRequest&) { return handler(); };
  }
  // Binds and listens (throws naming the address), then serves until stop().
  void start();
  void stop();
  tcp::endpoint localEndpoint() const;

 private:
  awaitable<void> acceptLoop();
  awaitable<void> serve(tcp::socket socket);
  awaitable<void> serveOn(tcp::socket& socket);
  AdminResponse dispatch(const std::string& method, const std::string& target);

  asio::io_context& io_;
  tcp::endpoint endpoint_;
  tcp::acceptor acceptor_;
  std::map<std::string, Handler> routes_;
  // A descriptor kept in reserve: out of descriptors, it is freed to answer one request
  // at a time (kubelet's probes keep their answers while the data path is at its limit).
  DescriptorReserve reserve_;
  uint64_t acceptFailures_ = 0;
  std::chrono::steady_clock::time_point lastAcceptLog_{};
};

}  // namespace sluice
