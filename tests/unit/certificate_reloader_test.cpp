// CertificateReloader on real files and inotify: rotations in place and by a Secret's
// `..data` swap are taken; a key that does not match yet, a certificate with two URI SANs
// or an expired one are refused and the loaded certificate stays.
#include "certificate_reloader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <functional>

#include "test_certificates.h"

namespace sluice {
namespace {

using test_pki::CertSpec;
using test_pki::TestMeshCa;

class CertificateReloaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("sluice-reloader-test-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_ / "..v1");
    std::filesystem::create_directories(dir_ / "ca");
    ca_ = std::make_unique<TestMeshCa>(dir_ / "ca");
    std::filesystem::copy_file(ca_->caFile(), dir_ / "..v1/mesh-ca.pem");
    issue("..v1/agent", 1);
    // The Secret layout: agent.pem -> ..data/agent.pem, ..data -> ..v1.
    std::filesystem::create_directory_symlink("..v1", dir_ / "..data");
    for (const char* f : {"agent.pem", "agent.key", "mesh-ca.pem"}) {
      std::filesystem::create_symlink(std::filesystem::path("..data") / f, dir_ / f);
    }
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  test_pki::CertPtr issue(const std::string& name, long serial, const std::string& sans = "URI:spiffe://td/sa/agent",
                          EVP_PKEY* key = nullptr) {
    CertSpec spec;
    spec.sans = sans;
    spec.serial = serial;
    return ca_->issue((dir_ / name).string(), spec, key);
  }
  // Through the Secret's symlinks.
  TlsFiles files() const { return {dir_ / "mesh-ca.pem", dir_ / "agent.pem", dir_ / "agent.key"}; }
  // The files themselves, as a host path or a tool that writes them in place names them.
  TlsFiles plainFiles() const { return {dir_ / "..v1/mesh-ca.pem", dir_ / "..v1/agent.pem", dir_ / "..v1/agent.key"}; }

  // Runs the io_context until `done` holds, for at most 10 s.
  bool runUntil(const std::function<bool()>& done) {
    for (int i = 0; i < 200 && !done(); ++i) io_.run_for(std::chrono::milliseconds(50));
    return done();
  }
  // Runs long enough for a change to have settled and been taken or refused.
  void settle() { io_.run_for(CertificateReloader::kSettle * 3); }

  asio::io_context io_;
  std::filesystem::path dir_;
  std::unique_ptr<TestMeshCa> ca_;
};

TEST_F(CertificateReloaderTest, TakesInPlaceWrites) {
  CertificateReloader reloader(io_, plainFiles(), TlsRole::Client, true);
  EXPECT_EQ(reloader.certificate().serial, "01");
  auto first = reloader.context();  // held, so a new context cannot reuse its address
  issue("..v1/agent", 2);
  ASSERT_TRUE(runUntil([&] { return reloader.reloads() == 1; }));
  EXPECT_EQ(reloader.certificate().serial, "02");
  EXPECT_NE(reloader.context(), first);
  EXPECT_EQ(reloader.rejected(), 0u);
}

TEST_F(CertificateReloaderTest, TakesASecretSwap) {
  CertificateReloader reloader(io_, files(), TlsRole::Client, true);
  // The kubelet's way: a new directory, then ..data renamed over.
  std::filesystem::create_directory(dir_ / "..v2");
  std::filesystem::copy_file(dir_ / "..v1/mesh-ca.pem", dir_ / "..v2/mesh-ca.pem");
  issue("..v2/agent", 3);
  std::filesystem::create_directory_symlink("..v2", dir_ / "..data_tmp");
  std::filesystem::rename(dir_ / "..data_tmp", dir_ / "..data");
  ASSERT_TRUE(runUntil([&] { return reloader.reloads() == 1; }));
  EXPECT_EQ(reloader.certificate().serial, "03");
  EXPECT_EQ(reloader.rejected(), 0u);
}

TEST_F(CertificateReloaderTest, CertificateBeforeItsKeyIsRefusedThenTaken) {
  CertificateReloader reloader(io_, plainFiles(), TlsRole::Client, true);
  test_pki::KeyPtr nextKey = test_pki::newKey();
  issue("..v1/agent", 4, "URI:spiffe://td/sa/agent", nextKey.get());  // the certificate first
  ASSERT_TRUE(runUntil([&] { return reloader.rejected() == 1; }));
  EXPECT_EQ(reloader.certificate().serial, "01") << "a certificate without its key must not be taken";
  EXPECT_EQ(reloader.reloads(), 0u);
  test_pki::writePem(dir_ / "..v1/agent.key", nextKey.get());  // then its key
  ASSERT_TRUE(runUntil([&] { return reloader.reloads() == 1; }));
  EXPECT_EQ(reloader.certificate().serial, "04");
}

TEST_F(CertificateReloaderTest, TwoUriSansOrExpiredKeepTheLoadedCertificate) {
  CertificateReloader reloader(io_, plainFiles(), TlsRole::Client, true);
  test_pki::KeyPtr key = test_pki::newKey();
  test_pki::writePem(dir_ / "..v1/agent.key", key.get());
  issue("..v1/agent", 5, "URI:spiffe://td/sa/agent,URI:spiffe://td/sa/admin", key.get());
  ASSERT_TRUE(runUntil([&] { return reloader.rejected() >= 1; }));
  settle();
  CertSpec expired;
  expired.sans = "URI:spiffe://td/sa/agent";
  expired.serial = 6;
  expired.notBefore = 1'600'000'000;
  expired.notAfter = 1'700'000'000;
  const uint64_t before = reloader.rejected();
  ca_->issue((dir_ / "..v1/agent").string(), expired, key.get());
  ASSERT_TRUE(runUntil([&] { return reloader.rejected() > before; }));
  EXPECT_EQ(reloader.certificate().serial, "01");
  EXPECT_EQ(reloader.reloads(), 0u);
}

TEST_F(CertificateReloaderTest, StartFailsOnACertificateWithTwoUriSans) {
  issue("..v1/agent", 7, "URI:spiffe://td/sa/agent,URI:spiffe://td/sa/admin");
  EXPECT_THROW(CertificateReloader(io_, files(), TlsRole::Client, false), std::runtime_error);
}

TEST_F(CertificateReloaderTest, RulesMayNotMoveTheWatchedFiles) {
  CertificateReloader reloader(io_, files(), TlsRole::Client, false);
  EXPECT_NO_THROW(reloader.requireSameFiles(files(), "agent.tls"));
  TlsFiles other = files();
  other.key = dir_ / "other.key";
  EXPECT_THROW(reloader.requireSameFiles(other, "agent.tls"), ConfigError);
}

}  // namespace
}  // namespace sluice
