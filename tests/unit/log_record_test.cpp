#include "log_record.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace sluice {
namespace {

TEST(LogRecordTest, PlainValuesStayBareAndOthersAreQuoted) {
  EXPECT_EQ(textValue("www.googleapis.com"), "www.googleapis.com");
  EXPECT_EQ(textValue("198.18.1.2:443"), "198.18.1.2:443");
  EXPECT_EQ(textValue("[2001:db8::2]:443"), "[2001:db8::2]:443");
  EXPECT_EQ(textValue("spiffe://cluster.local/ns/x/sa/y"), "spiffe://cluster.local/ns/x/sa/y");
  EXPECT_EQ(textValue(""), "\"\"");
  EXPECT_EQ(textValue("a b"), "\"a b\"");
  EXPECT_EQ(textValue("k=v"), "\"k=v\"");
}

TEST(LogRecordTest, AnSniCannotForgeAField) {
  // The issue's example: printable '"' and '=' in an SNI.
  LogRecord record("deny");
  record.add("sni", "evil.com\"reason=ok\"rule=x").add("reason", "invalid-sni");
  EXPECT_EQ(record.text(), "deny sni=\"evil.com\\\"reason=ok\\\"rule=x\" reason=invalid-sni");
  // A backslash cannot end the quoting either, and control bytes cannot start a new line.
  LogRecord tricky("deny");
  tricky.add("sni", "a\\\" reason=ok\nflow x=1\r\x1b[31m\xff");
  EXPECT_EQ(tricky.text(), "deny sni=\"a\\\\\\\" reason=ok\\x0aflow x=1\\x0d\\x1b[31m\\xff\"");
  EXPECT_EQ(tricky.text().find('\n'), std::string::npos);
}

TEST(LogRecordTest, LongValuesAreCutWithAMarker) {
  const std::string sni(9800, 'a');
  LogRecord record("deny");
  record.add("sni", sni).add("reason", "invalid-sni");
  const std::string line = record.text();
  EXPECT_LT(line.size(), 400u) << line.size();
  EXPECT_NE(line.find("...[+" + std::to_string(9800 - kMaxValueBytes) + " bytes]"), std::string::npos);
  EXPECT_NE(line.find(" reason=invalid-sni"), std::string::npos);
  EXPECT_EQ(truncateValue("short"), "short");
  EXPECT_EQ(truncateValue("abcdef", 4), "abcd...[+2 bytes]");
  // The limit counts input bytes: escaping cannot push an attacker past it by much.
  EXPECT_EQ(escapeValue(std::string(300, '"'), 4), "\\\"\\\"\\\"\\\"...[+296 bytes]");
}

TEST(LogRecordTest, JsonRecordParsesAndKeepsTypes) {
  LogRecord record("flow", std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'123)));
  record.add("sni", "evil.com\"x\n\xc3\x28").add("up", uint64_t{752}).add("connection_id", "0123456789abcdef");
  const std::string line = record.json(spdlog::level::info);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["time"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["kind"], "flow");
  EXPECT_EQ(j["up"], 752);
  EXPECT_EQ(j["connection_id"], "0123456789abcdef");
  // Invalid UTF-8 and control bytes arrive as \xNN text, never break the JSON.
  EXPECT_EQ(j["sni"], "evil.com\\\"x\\x0a\\xc3(");
}

TEST(LogRecordTest, TimestampsAreUtcWithZ) {
  EXPECT_EQ(utcTimestamp(std::chrono::system_clock::time_point(std::chrono::seconds(0))), "1970-01-01T00:00:00.000Z");
}

TEST(LogRecordTest, FormatNames) {
  EXPECT_EQ(parseLogFormat("text"), LogFormat::Text);
  EXPECT_EQ(parseLogFormat("json"), LogFormat::Json);
  EXPECT_THROW(parseLogFormat("xml"), std::runtime_error);
}

}  // namespace
}  // namespace sluice
