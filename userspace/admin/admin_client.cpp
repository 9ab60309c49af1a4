#include "admin_client.h"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace sluice {
namespace beast = boost::beast;
namespace http = beast::http;

std::optional<AdminReply> adminGet(const tcp::endpoint& endpoint, const std::string& target,
                                   std::chrono::milliseconds timeout, std::string& error) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  beast::flat_buffer buffer;
  http::request<http::empty_body> request{http::verb::get, target, 11};
  request.set(http::field::host, endpoint.address().to_string());
  request.set(http::field::user_agent, "sluicectl");
  http::response_parser<http::string_body> parser;
  parser.body_limit(16 * 1024 * 1024);
  boost::system::error_code failure;
  bool done = false;
  stream.expires_after(timeout);
  stream.async_connect(endpoint, [&](boost::system::error_code ec) {
    if (ec) {
      failure = ec;
      return;
    }
    http::async_write(stream, request, [&](boost::system::error_code ec, size_t) {
      if (ec) {
        failure = ec;
        return;
      }
      http::async_read(stream, buffer, parser, [&](boost::system::error_code ec, size_t) {
        failure = ec;
        done = !ec;
      });
    });
  });
  io.run();
  if (!done) {
    error = failure ? failure.message() : "no answer";
    return std::nullopt;
  }
  return AdminReply{parser.get().result_int(), parser.get().body()};
}

std::string urlEncode(const std::string& value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace sluice
