// A scratch directory with stand-ins for the certificate files the examples name (the
// loader checks they can be read; the TLS code, not under test here, parses them).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace sluice {

class RulesFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("sluice-rules-test-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_ / "pki");
    for (const char* f : {"mesh-ca.pem", "agent.pem", "agent.key", "gateway.pem", "gateway.key"}) {
      std::ofstream(dir_ / "pki" / f) << "x";
    }
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static std::string source(const std::string& relative) {
    std::ifstream in(std::string(SLUICE_SOURCE_DIR) + "/" + relative);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  std::filesystem::path write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return dir_ / name;
  }

  std::filesystem::path dir_;
};

}  // namespace sluice
