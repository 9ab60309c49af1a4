#include "host_matcher.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(NormalizeHostName, Table) {
  struct Row {
    const char* in;
    const char* out;  // nullptr: refused
  } rows[] = {
      {"www.GoogleAPIs.com", "www.googleapis.com"},
      {"www.googleapis.com.", "www.googleapis.com"},
      {"a-b.example", "a-b.example"},
      {"", nullptr},
      {".", nullptr},
      {"a..b", nullptr},
      {"-a.example", nullptr},
      {"a-.example", nullptr},
      {"198.18.0.1", nullptr},
      {"1.2.3", nullptr},
      {"exa mple.com", nullptr},
      {"例え.jp", nullptr},
  };
  for (const auto& row : rows) {
    auto got = normalizeHostName(row.in);
    if (row.out) {
      ASSERT_TRUE(got.has_value()) << row.in;
      EXPECT_EQ(*got, row.out) << row.in;
    } else {
      EXPECT_FALSE(got.has_value()) << row.in << " -> " << got.value_or("");
    }
  }
  EXPECT_FALSE(normalizeHostName(std::string(64, 'a') + ".com").has_value());
  EXPECT_TRUE(normalizeHostName(std::string(63, 'a') + ".com").has_value());
}

TEST(HostRuleError, RefusesBroadOrMalformedWildcards) {
  for (const char* bad : {"*", "*.com", "a*.example.com", "*.*.example.com", "www.*.com", "*example.com"}) {
    EXPECT_TRUE(hostRuleError(bad).has_value()) << bad;
  }
  for (const char* good : {"www.googleapis.com", "*.googleapis.com", "*.co.uk"}) {
    EXPECT_FALSE(hostRuleError(good).has_value()) << good << ": " << hostRuleError(good).value_or("");
  }
}

TEST(HostMatcher, ExactWildcardPortAndSpecificity) {
  HostMatcher m;
  m.add("www.googleapis.com", {443});
  m.add("*.example.com", {443, 8443});
  m.add("*.deep.example.com", {9443});
  m.add("API.Example.com", {1443});

  EXPECT_EQ(m.match("www.googleapis.com", 443), "www.googleapis.com");
  EXPECT_EQ(m.match("WWW.googleapis.com.", 443), "www.googleapis.com");
  EXPECT_FALSE(m.match("www.googleapis.com", 80));
  EXPECT_FALSE(m.match("googleapis.com", 443));
  EXPECT_FALSE(m.match("evil-www.googleapis.com", 443));

  EXPECT_EQ(m.match("a.example.com", 8443), "*.example.com");
  EXPECT_EQ(m.match("a.b.example.com", 443), "*.example.com");
  EXPECT_FALSE(m.match("example.com", 443)) << "a wildcard does not match its own domain";
  EXPECT_FALSE(m.match("example.com.evil.net", 443));
  // The longest wildcard is tried first; it allows only 9443, the shorter one 443.
  EXPECT_EQ(m.match("x.deep.example.com", 9443), "*.deep.example.com");
  EXPECT_EQ(m.match("x.deep.example.com", 443), "*.example.com");
  // Exact beats wildcard.
  EXPECT_EQ(m.match("api.example.com", 1443), "api.example.com");
  EXPECT_FALSE(m.match("198.18.100.10", 443));
}

}  // namespace
}  // namespace sluice
