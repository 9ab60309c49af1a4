// The mesh certificate rules: exactly one URI SAN (own and peer), key and certificate
// match, validity window, and how expiry and serial are read.
#include "tls_identity.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <unistd.h>

#include "test_certificates.h"
#include "tls_context.h"

namespace sluice {
namespace {

using test_pki::CertSpec;
using test_pki::TestMeshCa;

CertSpec withSans(const std::string& sans) {
  CertSpec spec;
  spec.sans = sans;
  return spec;
}

class TlsIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("sluice-tls-test-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    ca_ = std::make_unique<TestMeshCa>(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  TlsFiles files(const std::string& name) const {
    return {ca_->caFile(), dir_ / (name + ".pem"), dir_ / (name + ".key")};
  }

  // "" if loadMeshCredentials accepts NAME's files, else its message.
  std::string loadError(const std::string& name) {
    try {
      loadMeshCredentials(files(name), TlsRole::Client, nullptr);
      return "";
    } catch (const std::exception& e) {
      return e.what();
    }
  }

  std::filesystem::path dir_;
  std::unique_ptr<TestMeshCa> ca_;
};

TEST_F(TlsIdentityTest, CountsUriSansAndIgnoresDnsSans) {
  EXPECT_TRUE(uriSans(ca_->issue("none", withSans("")).get()).empty());
  EXPECT_TRUE(uriSans(ca_->issue("dns", withSans("DNS:gw.example.com")).get()).empty());
  EXPECT_EQ(uriSans(ca_->issue("one", withSans("DNS:gw.example.com,URI:spiffe://td/sa/a,DNS:x.example")).get()),
            std::vector<std::string>{"spiffe://td/sa/a"});
  EXPECT_EQ(uriSans(ca_->issue("two", withSans("URI:spiffe://td/sa/a,URI:spiffe://td/sa/b")).get()),
            (std::vector<std::string>{"spiffe://td/sa/a", "spiffe://td/sa/b"}));
}

TEST_F(TlsIdentityTest, OwnCertificateNeedsExactlyOneUriSan) {
  const auto now = WallClock::now();
  auto problem = [&](const std::string& sans) {
    return ownCertificateProblem(describeCertificate(ca_->issue("c", withSans(sans)).get()), now).value_or("");
  };
  EXPECT_EQ(problem("URI:spiffe://td/sa/a,DNS:a.example"), "");
  EXPECT_EQ(problem(""), "it has 0 URI SANs; exactly one (its SPIFFE ID) is required");
  EXPECT_EQ(problem("DNS:a.example"), "it has 0 URI SANs; exactly one (its SPIFFE ID) is required");
  EXPECT_EQ(problem("URI:spiffe://td/sa/a,URI:spiffe://td/sa/b"),
            "it has 2 URI SANs (spiffe://td/sa/a, spiffe://td/sa/b); exactly one (its SPIFFE ID) is required");
}

TEST_F(TlsIdentityTest, ReadsSerialAndValidityExactly) {
  CertSpec spec = withSans("URI:spiffe://td/sa/a");
  spec.serial = 0x1A2B3C;
  spec.notBefore = 1'800'000'000;  // 2027-01-15T08:00:00Z
  spec.notAfter = 1'900'000'000;   // 2030-03-17T17:46:40Z
  CertificateInfo info = describeCertificate(ca_->issue("c", spec).get());
  EXPECT_EQ(info.serial, "1A2B3C");
  EXPECT_EQ(info.uri(), "spiffe://td/sa/a");
  EXPECT_EQ(WallClock::to_time_t(info.notBefore), 1'800'000'000);
  EXPECT_EQ(WallClock::to_time_t(info.notAfter), 1'900'000'000);
  EXPECT_EQ(formatUtc(info.notBefore), "2027-01-15T08:00:00Z");
  EXPECT_EQ(formatUtc(info.notAfter), "2030-03-17T17:46:40Z");

  EXPECT_EQ(ownCertificateProblem(info, WallClock::from_time_t(1'700'000'000)).value_or(""),
            "it is not valid before 2027-01-15T08:00:00Z");
  EXPECT_EQ(ownCertificateProblem(info, WallClock::from_time_t(1'900'000'000)).value_or(""),
            "it expired at 2030-03-17T17:46:40Z");
  EXPECT_FALSE(ownCertificateProblem(info, WallClock::from_time_t(1'899'999'999)));
}

TEST_F(TlsIdentityTest, WarnsInTheLastThirdOfTheLifetimeOrTheLastDay) {
  CertificateInfo info;
  info.notBefore = WallClock::from_time_t(1'800'000'000);
  info.notAfter = info.notBefore + std::chrono::seconds(90);
  EXPECT_EQ(expiryWarningWindow(info), std::chrono::seconds(30));
  info.notAfter = info.notBefore + std::chrono::hours(24);
  EXPECT_EQ(expiryWarningWindow(info), std::chrono::hours(8));
  info.notAfter = info.notBefore + std::chrono::hours(24 * 90);
  EXPECT_EQ(expiryWarningWindow(info), std::chrono::hours(24));
}

TEST_F(TlsIdentityTest, LoadRefusesAKeyThatDoesNotMatchTheCertificate) {
  ca_->issue("agent", withSans("URI:spiffe://td/sa/agent"));
  EXPECT_EQ(loadError("agent"), "");
  test_pki::writePem(dir_ / "agent.key", test_pki::newKey().get());  // the key rotated, the cert not yet
  std::string error = loadError("agent");
  EXPECT_NE(
      error.find("private key " + (dir_ / "agent.key").string() + " does not match " + (dir_ / "agent.pem").string()),
      std::string::npos)
      << error;
}

TEST_F(TlsIdentityTest, LoadRefusesTwoUriSansAndExpiredCertificatesNamingTheFile) {
  ca_->issue("two", withSans("URI:spiffe://td/sa/a,URI:spiffe://td/sa/b"));
  EXPECT_EQ(loadError("two"), "certificate " + (dir_ / "two.pem").string() +
                                  " refused: it has 2 URI SANs (spiffe://td/sa/a, spiffe://td/sa/b); exactly one (its "
                                  "SPIFFE ID) is required");
  CertSpec expired = withSans("URI:spiffe://td/sa/a");
  expired.notBefore = 1'600'000'000;
  expired.notAfter = 1'700'000'000;
  ca_->issue("old", expired);
  EXPECT_EQ(loadError("old"), "certificate " + (dir_ / "old.pem").string() + " refused: it expired at " +
                                  formatUtc(WallClock::from_time_t(1'700'000'000)));
  ca_->issue("ok", withSans("URI:spiffe://td/sa/a"));
  auto loaded = loadMeshCredentials(files("ok"), TlsRole::Server, nullptr);
  EXPECT_EQ(loaded->certificate.uri(), "spiffe://td/sa/a");
}

// A TLS 1.3 handshake in memory between two mesh contexts; returns the error text of the
// side that failed, or "" if both completed.
std::string handshake(SSL_CTX* clientCtx, SSL_CTX* serverCtx) {
  SslPtr client(SSL_new(clientCtx));
  SslPtr server(SSL_new(serverCtx));
  BIO* clientBio = nullptr;
  BIO* serverBio = nullptr;
  BIO_new_bio_pair(&clientBio, 0, &serverBio, 0);
  SSL_set_bio(client.get(), clientBio, clientBio);
  SSL_set_bio(server.get(), serverBio, serverBio);
  SSL_set_connect_state(client.get());
  SSL_set_accept_state(server.get());
  SSL_set_tlsext_host_name(client.get(), "www.example.com");
  bool clientDone = false;
  bool serverDone = false;
  for (int round = 0; round < 20 && !(clientDone && serverDone); ++round) {
    for (auto [ssl, done, who] :
         {std::tuple{client.get(), &clientDone, "client"}, {server.get(), &serverDone, "server"}}) {
      if (*done) continue;
      ERR_clear_error();
      int r = SSL_do_handshake(ssl);
      if (r == 1) {
        *done = true;
        continue;
      }
      int error = SSL_get_error(ssl, r);
      if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
        return std::string(who) + ": " + takeOpensslErrors();
      }
    }
  }
  return clientDone && serverDone ? "" : "handshake did not finish";
}

TEST_F(TlsIdentityTest, PeerWithTwoUriSansIsRefusedByBothRoles) {
  ca_->issue("agent", withSans("URI:spiffe://td/sa/agent"));
  ca_->issue("gateway", withSans("DNS:gw.example,URI:spiffe://td/sa/gateway"));
  ca_->issue("agent2", withSans("URI:spiffe://td/sa/agent,URI:spiffe://td/sa/admin"));
  ca_->issue("gateway2", withSans("URI:spiffe://td/sa/gateway,URI:spiffe://td/sa/agent"));
  ca_->issue("agent0", withSans("DNS:agent.example"));
  // makeMeshTlsContext does not check its own certificate: it stands in for a peer that
  // does not run sluice's checks.
  auto client = [&](const char* name) { return makeMeshTlsContext(files(name), TlsRole::Client); };
  auto server = [&](const char* name) { return makeMeshTlsContext(files(name), TlsRole::Server); };

  EXPECT_EQ(handshake(client("agent").get(), server("gateway").get()), "");
  std::string refused = handshake(client("agent2").get(), server("gateway").get());
  EXPECT_TRUE(refused.starts_with("server: ")) << refused;
  EXPECT_NE(refused.find("peer certificate has 2 URI SANs; exactly one (its SPIFFE ID) is required"), std::string::npos)
      << refused;
  refused = handshake(client("agent0").get(), server("gateway").get());
  EXPECT_NE(refused.find("server: "), std::string::npos) << refused;
  EXPECT_NE(refused.find("peer certificate has 0 URI SANs"), std::string::npos) << refused;
  refused = handshake(client("agent").get(), server("gateway2").get());
  EXPECT_TRUE(refused.starts_with("client: ")) << refused;
  EXPECT_NE(refused.find("peer certificate has 2 URI SANs"), std::string::npos) << refused;
}

}  // namespace
}  // namespace sluice
