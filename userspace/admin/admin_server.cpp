#include "admin_server.h"

#include <spdlog/spdlog.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "fd_limits.h"
#include "spawn.h"

namespace sluice {
namespace beast = boost::beast;
namespace http = beast::http;

tcp::endpoint parseAdminAddress(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) {
    throw std::runtime_error("--admin-address '" + text + "': expected ADDRESS:PORT");
  }
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) throw std::runtime_error("--admin-address '" + text + "': '" + host + "' is not an IP address");
  unsigned long port = 0;
  try {
    size_t used = 0;
    port = std::stoul(text.substr(colon + 1), &used);
    if (used != text.size() - colon - 1) port = 70000;
  } catch (const std::exception&) {
    port = 70000;
  }
  if (port > 65535) throw std::runtime_error("--admin-address '" + text + "': bad port");
  return tcp::endpoint(address, static_cast<uint16_t>(port));
}

AdminServer::AdminServer(asio::io_context& io, tcp::endpoint endpoint)
    : io_(io), endpoint_(std::move(endpoint)), acceptor_(io) {}

void AdminServer::start() {
  acceptor_.open(endpoint_.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  boost::system::error_code ec;
  acceptor_.bind(endpoint_, ec);
  if (ec) {
    throw std::runtime_error("admin endpoint: binding " + endpoint_.address().to_string() + ":" +
                             std::to_string(endpoint_.port()) + ": " + ec.message());
  }
  acceptor_.listen(64);
  asio::co_spawn(io_, acceptLoop(), logEscapedException("admin accept loop"));
}

void AdminServer::stop() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

tcp::endpoint AdminServer::localEndpoint() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec);
}

awaitable<void> AdminServer::acceptLoop() {
  while (acceptor_.is_open()) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted) break;
    if (ec) {
      const auto now = std::chrono::steady_clock::now();
      ++acceptFailures_;
      if (now - lastAcceptLog_ >= std::chrono::seconds(1)) {
        spdlog::error("admin endpoint: accept: {} (failures={})", ec.message(), acceptFailures_);
        lastAcceptLog_ = now;
      }
      if ((ec.value() == EMFILE || ec.value() == ENFILE) && (reserve_.held() || reserve_.retake())) {
        // Out of descriptors: the reserved number serves this request (a liveness probe
        // still gets its answer), one at a time, and is taken back from its socket.
        reserve_.release();
        socket = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
        if (ec) {
          reserve_.retake();
        } else {
          co_await serveOn(socket);
          boost::system::error_code ignored;
          reserve_.retake(socket.is_open() ? socket.release(ignored) : -1);
          continue;
        }
      }
      asio::steady_timer pause(io_, std::chrono::milliseconds(200));
      co_await pause.async_wait(use_awaitable);
      continue;
    }
    asio::co_spawn(io_, serve(std::move(socket)), logEscapedException("admin request"));
  }
}

namespace {

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percentDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%' && i + 2 < text.size() && hexDigit(text[i + 1]) >= 0 && hexDigit(text[i + 2]) >= 0) {
      out += static_cast<char>(hexDigit(text[i + 1]) * 16 + hexDigit(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::map<std::string, std::string> parseQuery(std::string_view query) {
  std::map<std::string, std::string> out;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    auto eq = pair.find('=');
    out[percentDecode(pair.substr(0, eq))] = eq == std::string_view::npos ? "" : percentDecode(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

}  // namespace

AdminResponse AdminServer::dispatch(const std::string& method, const std::string& target) {
  const auto mark = target.find('?');
  std::string path = target.substr(0, mark);
  AdminRequest request{path, mark == std::string::npos ? std::map<std::string, std::string>{}
                                                       : parseQuery(std::string_view(target).substr(mark + 1))};
  auto route = routes_.find(path);
  if (route == routes_.end()) {
    std::string known;
    for (const auto& [p, _] : routes_) known += (known.empty() ? "" : " ") + p;
    return {404, "text/plain; charset=utf-8", "not found; try " + known + "\n"};
  }
  if (method != "GET" && method != "HEAD") return {405, "text/plain; charset=utf-8", "only GET\n"};
  try {
    return route->second(request);
  } catch (const std::exception& e) {
    spdlog::error("admin endpoint {}: {}", path, e.what());
    return {500, "text/plain; charset=utf-8", std::string("error: ") + e.what() + "\n"};
  }
}

awaitable<void> AdminServer::serve(tcp::socket socket) {
  co_await serveOn(socket);
}

awaitable<void> AdminServer::serveOn(tcp::socket& socket) {
  auto executor = co_await asio::this_coro::executor;
  Deadline deadline(executor, std::chrono::seconds(5), [&socket] {
    boost::system::error_code ignored;
    socket.close(ignored);
  });
  beast::flat_buffer buffer(8192);
  http::request_parser<http::empty_body> parser;
  parser.header_limit(8192);
  parser.body_limit(0);
  boost::system::error_code ec;
  co_await http::async_read(socket, buffer, parser, asio::redirect_error(use_awaitable, ec));
  AdminResponse response;
  unsigned version = 11;
  bool head = false;
  if (ec) {
    if (ec == http::error::end_of_stream || !socket.is_open()) co_return;
    response = {400, "text/plain; charset=utf-8", "bad request: " + ec.message() + "\n"};
  } else {
    const auto& request = parser.get();
    version = request.version();
    head = request.method() == http::verb::head;
    response = dispatch(std::string(request.method_string()), std::string(request.target()));
  }
  http::response<http::string_body> reply{static_cast<http::status>(response.status), version};
  reply.set(http::field::server, "sluice");
  reply.set(http::field::content_type, response.contentType);
  reply.set(http::field::cache_control, "no-store");
  reply.keep_alive(false);
  reply.body() = head ? std::string() : std::move(response.body);
  reply.prepare_payload();
  co_await http::async_write(socket, reply, asio::redirect_error(use_awaitable, ec));
  socket.shutdown(tcp::socket::shutdown_both, ec);
}

}  // namespace sluice
