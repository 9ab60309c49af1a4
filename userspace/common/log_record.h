// One access record per flow, written as a text line or a JSON object (--log-format).
// Values come from the network (an SNI, a certificate's URI), so none can forge a field:
// text values with anything but a plain token character are quoted with `"` and `\`
// escaped, control and non-ASCII bytes are written as \xNN in both formats, and a value
// longer than kMaxValueBytes is cut with a marker.
#pragma once

#include <spdlog/common.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace sluice {

enum class LogFormat { Text, Json };
// "text" or "json"; throws std::runtime_error naming the value otherwise.
LogFormat parseLogFormat(const std::string& name);

inline constexpr size_t kMaxValueBytes = 256;

// The value cut to `limit` bytes plus "...[+N bytes]" when longer.
std::string truncateValue(std::string_view value, size_t limit = kMaxValueBytes);
// Printable ASCII kept, `\` doubled, `"` as \", every other byte as \xNN (after truncation).
std::string escapeValue(std::string_view value, size_t limit = kMaxValueBytes);
// A text-line value: as is if it is a non-empty run of [A-Za-z0-9._:/@+,*[]-], else
// "escaped" in double quotes.
std::string textValue(std::string_view value, size_t limit = kMaxValueBytes);

// "2026-11-27T20:52:54.123Z".
std::string utcTimestamp(std::chrono::system_clock::time_point time);

class LogRecord {
 public:
  // `kind` starts the text line and is the JSON "kind": flow, deny, access.
  explicit LogRecord(std::string kind, std::chrono::system_clock::time_point time = std::chrono::system_clock::now())
      : kind_(std::move(kind)), time_(time) {}
  LogRecord& add(std::string key, std::string_view value);
  LogRecord& add(std::string key, const char* value) { return add(std::move(key), std::string_view(value)); }
  LogRecord& add(std::string key, const std::string& value) { return add(std::move(key), std::string_view(value)); }
  LogRecord& add(std::string key, uint64_t value);
  LogRecord& add(std::string key, int64_t value) { return add(std::move(key), static_cast<uint64_t>(value)); }
  LogRecord& add(std::string key, uint32_t value) { return add(std::move(key), uint64_t{value}); }
  LogRecord& add(std::string key, int value) { return add(std::move(key), static_cast<uint64_t>(value)); }

  // "flow key=value key=\"v a l\" ..." (the logger's pattern puts the time first).
  std::string text() const;
  // {"time":"...Z","level":"info","kind":"flow","key":"value","up":752,...}, one line.
  std::string json(spdlog::level::level_enum level) const;
  // The fields after "time" and "level": `,"kind":"flow",...}`.
  std::string jsonBody() const;

 private:
  std::string kind_;
  std::chrono::system_clock::time_point time_;
  std::vector<std::pair<std::string, std::variant<std::string, uint64_t>>> fields_;
};

// Writes the record through the default logger in the configured format. In JSON mode
// the line is the record alone (see configureLogFormat).
void writeRecord(spdlog::level::level_enum level, const LogRecord& record);

// Sets the default logger's line format: text lines start with the UTC time ending in
// `Z` and the level; in JSON mode every line is one JSON object: records as written,
// other messages as {"time","level","msg"}. Call after setupLogging.
void configureLogFormat(LogFormat format);
LogFormat currentLogFormat();

}  // namespace sluice
