#include "log_record.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <ctime>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace sluice {
namespace {

std::atomic<LogFormat> gFormat{LogFormat::Text};

// A JSON record's message starts with this byte: no other message does (every message
// starts with a literal word of ours), so the line formatter can tell records apart.
constexpr char kRecordMark = '\x1e';

bool isToken(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == ':' || c == '/' || c == '@' || c == '+' || c == ',' || c == '*' || c == '[' || c == ']' || c == '-';
}

// The "time" and "level" fields a JSON line starts with.
std::string jsonPrefix(std::chrono::system_clock::time_point time, spdlog::level::level_enum level) {
  auto name = spdlog::level::to_string_view(level);
  return "{\"time\":\"" + utcTimestamp(time) + "\",\"level\":\"" + std::string(name.data(), name.size()) + "\"";
}

// JSON mode: a record's line is the record; any other message is wrapped.
class JsonLineFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string_view payload(msg.payload.data(), msg.payload.size());
    std::string line;
    if (!payload.empty() && payload.front() == kRecordMark) {
      line = jsonPrefix(msg.time, msg.level);
      line.append(payload.substr(1));
    } else {
      line = jsonPrefix(msg.time, msg.level) + ",\"msg\":" + nlohmann::json(escapeValue(payload, 65536)).dump() + "}";
    }
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonLineFlag>(); }
};

}  // namespace

LogFormat parseLogFormat(const std::string& name) {
  if (name == "text") return LogFormat::Text;
  if (name == "json") return LogFormat::Json;
  throw std::runtime_error("unknown log format '" + name + "' (text, json)");
}

std::string truncateValue(std::string_view value, size_t limit) {
  if (value.size() <= limit) return std::string(value);
  return std::string(value.substr(0, limit)) + "...[+" + std::to_string(value.size() - limit) + " bytes]";
}

std::string escapeValue(std::string_view value, size_t limit) {
  std::string out;
  const std::string_view kept = value.substr(0, std::min(value.size(), limit));
  out.reserve(kept.size() + 16);
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char c : kept) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (value.size() > limit) out += "...[+" + std::to_string(value.size() - limit) + " bytes]";
  return out;
}

std::string textValue(std::string_view value, size_t limit) {
  bool plain = !value.empty() && value.size() <= limit;
  for (char c : value) plain = plain && isToken(c);
  if (plain) return std::string(value);
  return "\"" + escapeValue(value, limit) + "\"";
}

std::string utcTimestamp(std::chrono::system_clock::time_point time) {
  const auto seconds = std::chrono::time_point_cast<std::chrono::seconds>(time);
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(time - seconds).count();
  std::time_t t = std::chrono::system_clock::to_time_t(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(millis));
  return buffer;
}

LogRecord& LogRecord::add(std::string key, std::string_view value) {
  fields_.emplace_back(std::move(key), std::string(value));
  return *this;
}

LogRecord& LogRecord::add(std::string key, uint64_t value) {
  fields_.emplace_back(std::move(key), value);
  return *this;
}

std::string LogRecord::text() const {
  std::string line = kind_;
  for (const auto& [key, value] : fields_) {
    line += ' ';
    line += key;
    line += '=';
    if (const auto* s = std::get_if<std::string>(&value)) {
      line += textValue(*s);
    } else {
      line += std::to_string(std::get<uint64_t>(value));
    }
  }
  return line;
}

std::string LogRecord::json(spdlog::level::level_enum level) const {
  return jsonPrefix(time_, level) + jsonBody();
}

std::string LogRecord::jsonBody() const {
  // Values are escaped to printable ASCII first, so the JSON is valid whatever the bytes.
  nlohmann::ordered_json object;
  object["kind"] = kind_;
  for (const auto& [key, value] : fields_) {
    if (const auto* s = std::get_if<std::string>(&value)) {
      object[key] = escapeValue(*s);
    } else {
      object[key] = std::get<uint64_t>(value);
    }
  }
  std::string body = object.dump();
  body.front() = ',';  // continues after "time" and "level"
  return body;
}

void writeRecord(spdlog::level::level_enum level, const LogRecord& record) {
  if (gFormat.load(std::memory_order_relaxed) == LogFormat::Json) {
    spdlog::log(level, "{}{}", kRecordMark, record.jsonBody());
  } else {
    spdlog::log(level, "{}", record.text());
  }
}

void configureLogFormat(LogFormat format) {
  gFormat.store(format);
  std::unique_ptr<spdlog::pattern_formatter> formatter;
  if (format == LogFormat::Json) {
    formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonLineFlag>('*').set_pattern("%*");
  } else {
    formatter =
        std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
  }
  spdlog::default_logger()->set_formatter(std::move(formatter));
}

LogFormat currentLogFormat() {
  return gFormat.load();
}

}  // namespace sluice
