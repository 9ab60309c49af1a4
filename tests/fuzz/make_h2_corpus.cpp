// Seeds for h2_gateway_fuzz: what an agent sends after the client preface, made by an
// nghttp2 client session (SETTINGS, CONNECT streams with DATA, END_STREAM, RST_STREAM,
// PING, WINDOW_UPDATE, a non-CONNECT request).
//   sl-make-h2-corpus DIR
#include <nghttp2/nghttp2.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace {

struct Body {
  std::string bytes;
  size_t offset = 0;
  bool end = true;
};

ssize_t readBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags, nghttp2_data_source* source,
                 void*) {
  auto* body = static_cast<Body*>(source->ptr);
  size_t n = std::min(length, body->bytes.size() - body->offset);
  std::memcpy(buf, body->bytes.data() + body->offset, n);
  body->offset += n;
  if (body->offset == body->bytes.size()) {
    if (!body->end) return n ? static_cast<ssize_t>(n) : NGHTTP2_ERR_DEFERRED;
    *flags |= NGHTTP2_DATA_FLAG_EOF;
  }
  return static_cast<ssize_t>(n);
}

nghttp2_nv nv(const char* name, const char* value) {
  return {(uint8_t*)name, (uint8_t*)value, std::strlen(name), std::strlen(value), NGHTTP2_NV_FLAG_NONE};
}

std::string frames(const std::function<void(nghttp2_session*, std::vector<Body>&)>& script) {
  nghttp2_session_callbacks* callbacks;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session* session;
  nghttp2_session_client_new(&session, callbacks, nullptr);
  nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, 1);
  std::vector<Body> bodies;
  bodies.reserve(16);
  script(session, bodies);
  std::string out;
  const uint8_t* data;
  ssize_t n;
  while ((n = nghttp2_session_mem_send(session, &data)) > 0) out.append(reinterpret_cast<const char*>(data), n);
  nghttp2_session_del(session);
  nghttp2_session_callbacks_del(callbacks);
  return out.substr(NGHTTP2_CLIENT_MAGIC_LEN);  // the harness sends the preface itself
}

int32_t connect(nghttp2_session* session, std::vector<Body>& bodies, const char* authority, std::string body,
                bool end = true) {
  bodies.push_back(Body{std::move(body), 0, end});
  nghttp2_nv headers[] = {nv(":method", "CONNECT"), nv(":authority", authority),
                          nv("sluice-connection-id", "0123456789abcdef")};
  nghttp2_data_provider provider{};
  provider.source.ptr = &bodies.back();
  provider.read_callback = readBody;
  return nghttp2_submit_request(session, nullptr, headers, 3, &provider, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  std::string dir = argv[1];
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
  };
  write("connect-data-end", frames([](nghttp2_session* s, std::vector<Body>& b) {
          connect(s, b, "www.example.com:443", std::string(3000, 'h'));
        }));
  write("connect-denied",
        frames([](nghttp2_session* s, std::vector<Body>& b) { connect(s, b, "deny.example.com:443", "hello"); }));
  write("connect-then-reset", frames([](nghttp2_session* s, std::vector<Body>& b) {
          int32_t id = connect(s, b, "www.example.com:443", "hello", false);
          nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
        }));
  write("many-streams-ping-window", frames([](nghttp2_session* s, std::vector<Body>& b) {
          for (int i = 0; i < 8; ++i) connect(s, b, i % 2 ? "a.example:443" : "deny.example:8443", "x", i % 3 != 0);
          nghttp2_submit_ping(s, NGHTTP2_FLAG_NONE, nullptr);
          nghttp2_submit_window_update(s, NGHTTP2_FLAG_NONE, 0, 1 << 20);
        }));
  write("get-not-connect", frames([](nghttp2_session* s, std::vector<Body>&) {
          nghttp2_nv headers[] = {nv(":method", "GET"), nv(":scheme", "https"), nv(":path", "/"),
                                  nv(":authority", "www.example.com")};
          nghttp2_submit_request(s, nullptr, headers, 4, nullptr, nullptr);
        }));
  write("bad-authority", frames([](nghttp2_session* s, std::vector<Body>& b) { connect(s, b, "no-port", ""); }));
  return 0;
}
