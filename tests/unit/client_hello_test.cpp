#include "client_hello.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <random>
#include <string>
#include <vector>

#include "openssl_client_hello.h"

namespace sluice {
namespace {

struct HelloSpec {
  std::string name;
  std::string sni;           // empty: no SNI
  int maxVersion = 0;        // 0: library default (TLS 1.3)
  size_t alpnCount = 0;      // extra ALPN ids to grow the hello
  unsigned maxFragment = 0;  // >0: OpenSSL splits the hello into records of this size
};

// Short names in test listings instead of a byte dump of the struct.
void PrintTo(const HelloSpec& spec, std::ostream* out) {
  *out << spec.name;
}

std::vector<uint8_t> openSslClientHello(const HelloSpec& spec) {
  return makeOpenSslClientHello({spec.sni, spec.maxVersion, spec.alpnCount, spec.maxFragment});
}

class OpenSslHello : public ::testing::TestWithParam<HelloSpec> {};

TEST_P(OpenSslHello, ParsesWholeAndNeedsMoreForEveryPrefix) {
  const HelloSpec& spec = GetParam();
  auto hello = openSslClientHello(spec);
  ASSERT_GT(hello.size(), 50u);
  const size_t cap = 65536;

  HelloResult whole = parseClientHello(hello, cap);
  ASSERT_EQ(whole.status, HelloStatus::Done) << whole.error;
  EXPECT_EQ(whole.helloBytes, hello.size());
  if (spec.sni.empty()) {
    EXPECT_FALSE(whole.serverName.has_value());
  } else {
    ASSERT_TRUE(whole.serverName.has_value());
    EXPECT_EQ(*whole.serverName, spec.sni);
  }
  // Bytes arriving in segments: every proper prefix is a valid beginning.
  for (size_t cut = 0; cut < hello.size(); ++cut) {
    HelloResult partial = parseClientHello(std::span<const uint8_t>(hello.data(), cut), cap);
    ASSERT_EQ(partial.status, HelloStatus::NeedMore) << "prefix of " << cut << " bytes: " << partial.error;
  }
  // Bytes after the hello (early data, a pipelined record) do not change the answer.
  auto withTail = hello;
  withTail.insert(withTail.end(), {23, 3, 3, 0, 5, 1, 2, 3, 4, 5});
  HelloResult tail = parseClientHello(withTail, cap);
  ASSERT_EQ(tail.status, HelloStatus::Done);
  EXPECT_EQ(tail.serverName, whole.serverName);
}

TEST_P(OpenSslHello, RefusesWhenLargerThanTheCap) {
  auto hello = openSslClientHello(GetParam());
  HelloResult capped = parseClientHello(hello, hello.size() - 1);
  EXPECT_EQ(capped.status, HelloStatus::Error);
  EXPECT_NE(capped.error.find("larger than"), std::string::npos) << capped.error;
}

INSTANTIATE_TEST_SUITE_P(Hellos, OpenSslHello,
                         ::testing::Values(HelloSpec{"tls13_sni", "www.googleapis.com"}, HelloSpec{"tls13_no_sni", ""},
                                           HelloSpec{"tls12_sni", "example.com", TLS1_2_VERSION},
                                           HelloSpec{"long_sni", std::string(60, 'a') + "." + std::string(60, 'b') +
                                                                     ".example.org"},
                                           HelloSpec{"big_alpn", "big.example.com", 0, 60},
                                           HelloSpec{"multi_record_512", "split.example.com", 0, 20, 512},
                                           HelloSpec{"multi_record_no_sni", "", 0, 20, 512}),
                         [](const auto& info) { return info.param.name; });

TEST(ClientHello, PlaintextIsNotTls) {
  std::string http = "GET / HTTP/1.1\r\nHost: www.googleapis.com\r\n\r\n";
  auto r = parseClientHello(std::span(reinterpret_cast<const uint8_t*>(http.data()), http.size()), 16384);
  EXPECT_EQ(r.status, HelloStatus::NotTls);
  // Decided from the first byte alone, so a silent plaintext client fails fast.
  EXPECT_EQ(parseClientHello(std::span(reinterpret_cast<const uint8_t*>(http.data()), 1), 16384).status,
            HelloStatus::NotTls);
}

TEST(ClientHello, EmptyInputNeedsMore) {
  EXPECT_EQ(parseClientHello({}, 16384).status, HelloStatus::NeedMore);
}

TEST(ClientHello, RejectsMalformedRecordsAndMessages) {
  struct Case {
    const char* name;
    std::vector<uint8_t> bytes;
  };
  std::vector<Case> cases = {
      {"zero-length record", {22, 3, 1, 0, 0}},
      {"record over 16 KiB", {22, 3, 1, 0x40, 0x01}},
      {"not a ClientHello", {22, 3, 1, 0, 4, 2, 0, 0, 0}},
      {"alert after handshake start", {22, 3, 1, 0, 1, 1, 21, 3, 3, 0, 2, 2, 40}},
      {"hello body too short", {22, 3, 1, 0, 6, 1, 0, 0, 2, 3, 3}},
  };
  for (const auto& c : cases) {
    auto r = parseClientHello(c.bytes, 16384);
    EXPECT_EQ(r.status, HelloStatus::Error) << c.name << ": " << toString(r.status);
    EXPECT_FALSE(r.error.empty()) << c.name;
  }
}

TEST(ClientHello, TruncatedHellosNeverReadPastTheirEnd) {
  // Shrink the declared lengths: each variant must be Error or Done, never a crash;
  // ASan builds turn any overread into a failure.
  auto hello = openSslClientHello({"t", "www.googleapis.com"});
  for (size_t cut = 9; cut < hello.size(); ++cut) {
    std::vector<uint8_t> bytes(hello.begin(), hello.begin() + cut);
    size_t record = cut - 5;
    bytes[3] = static_cast<uint8_t>(record >> 8);
    bytes[4] = static_cast<uint8_t>(record);
    size_t message = record - 4;
    bytes[6] = static_cast<uint8_t>(message >> 16);
    bytes[7] = static_cast<uint8_t>(message >> 8);
    bytes[8] = static_cast<uint8_t>(message);
    auto r = parseClientHello(bytes, 65536);
    EXPECT_TRUE(r.status == HelloStatus::Error || r.status == HelloStatus::Done) << "cut " << cut;
  }
}

TEST(ClientHello, SurvivesEveryByteFlippedAndRandomGarbage) {
  auto hello = openSslClientHello({"f", "www.googleapis.com", 0, 3});
  size_t done = 0;
  for (size_t i = 0; i < hello.size(); ++i) {
    for (uint8_t flip : {0x01, 0x80, 0xff}) {
      auto bytes = hello;
      bytes[i] ^= flip;
      auto r = parseClientHello(bytes, 65536);
      if (r.status == HelloStatus::Done) {
        ++done;
        if (r.serverName) {
          EXPECT_LE(r.serverName->size(), 255u);
        }
      }
    }
  }
  // Most flips land in random, keys or cipher lists and still parse: the parser is not
  // rejecting everything.
  EXPECT_GT(done, hello.size());
  std::mt19937 rng(12345);
  for (int round = 0; round < 2000; ++round) {
    std::vector<uint8_t> bytes(rng() % 600);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    if (!bytes.empty() && round % 2) bytes[0] = 22;  // get past the first check often
    if (bytes.size() > 1 && round % 2) bytes[1] = 3;
    (void)parseClientHello(bytes, 16384);
  }
}

TEST(ClientHello, EncryptedClientHelloIsSeenWithItsOuterName) {
  ClientHelloShape shape{"public.example.com"};
  shape.echPayload = 200;
  auto hello = makeOpenSslClientHello(shape);
  auto plain = makeOpenSslClientHello({"public.example.com"});
  ASSERT_GE(hello.size(), plain.size() + 204) << "the extension (4 + 200 bytes) is in the hello";
  HelloResult r = parseClientHello(hello, 65536);
  ASSERT_EQ(r.status, HelloStatus::Done) << r.error;
  EXPECT_TRUE(r.encryptedClientHello);
  EXPECT_EQ(r.serverName, "public.example.com") << "only the outer, public name is in the clear";
  HelloResult p = parseClientHello(plain, 65536);
  ASSERT_EQ(p.status, HelloStatus::Done);
  EXPECT_FALSE(p.encryptedClientHello);
  // Split over records, and every prefix: still bounded, never Done early.
  shape.maxFragment = 512;
  shape.echPayload = 1500;
  auto split = makeOpenSslClientHello(shape);
  for (size_t cut = 1; cut < split.size(); ++cut) {
    auto partial = parseClientHello(std::span<const uint8_t>(split.data(), cut), 65536);
    ASSERT_EQ(partial.status, HelloStatus::NeedMore) << "cut " << cut;
  }
  HelloResult s = parseClientHello(split, 65536);
  ASSERT_EQ(s.status, HelloStatus::Done) << s.error;
  EXPECT_TRUE(s.encryptedClientHello);
}

}  // namespace
}  // namespace sluice
