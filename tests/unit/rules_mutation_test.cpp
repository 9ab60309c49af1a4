// Whatever a rules file says, loading it either succeeds or throws ConfigError naming the
// file: never another exception (the daemons keep their rules either way, but the
// operator must be told where). Deterministic mutations of the two example files.
#include <gtest/gtest.h>

#include <random>
#include <sstream>

#include "config.h"
#include "rules_fixture.h"

namespace sluice {
namespace {

class RulesMutationTest : public RulesFixture {};

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& l : v) out += l + "\n";
  return out;
}

// Replaces the value after "key:" on a line with something of another YAML type.
std::string retype(const std::string& line, unsigned kind) {
  auto colon = line.find(": ");
  if (colon == std::string::npos) return line;
  static const char* values[] = {"{a: 1}", "[x, y]",        "''",       "-1",           "99999999999999999999", "null",
                                 "*nope",  "!!binary AAAA", "{[1]: 2}", "[[1], {b: 2}]"};
  return line.substr(0, colon + 2) + values[kind % 10];
}

TEST_F(RulesMutationTest, OnlyConfigErrorsEscape) {
  const std::string node = source("examples/istio/sluice-node.yaml");
  const std::string seed = source("examples/istio/seed-egress.yaml");
  const std::string native = source("examples/seed-native.yaml");
  std::mt19937 rng(2026);
  int loaded = 0, refused = 0;
  for (int round = 0; round < 3000; ++round) {
    const bool istio = round % 2;
    auto text = lines(istio ? seed : native);
    int edits = 1 + rng() % 3;
    for (int e = 0; e < edits && !text.empty(); ++e) {
      size_t at = rng() % text.size();
      switch (rng() % 5) {
        case 0:
          text[at] = retype(text[at], rng());
          break;
        case 1:
          text.erase(text.begin() + at);
          break;
        case 2:
          text.insert(text.begin() + at, text[rng() % text.size()]);
          break;
        case 3:
          text[at] = text[at].substr(0, rng() % (text[at].size() + 1));
          break;
        case 4:
          text[at] = "  " + text[at];
          break;
      }
    }
    auto path = write("mutated.yaml", join(text));
    try {
      if (istio) {
        auto nodePath = write("sluice-node.yaml", node);
        loadConfigFiles({nodePath, path});
      } else {
        loadConfigFiles({path});
      }
      ++loaded;
    } catch (const ConfigError& e) {
      ++refused;
      ASSERT_NE(std::string(e.what()).find(".yaml"), std::string::npos) << "no file named: " << e.what();
    } catch (const std::exception& e) {
      FAIL() << "round " << round << ": " << typeid(e).name() << ": " << e.what() << "\n--- input ---\n" << join(text);
    }
  }
  EXPECT_GT(refused, 1000) << "the mutations should mostly break the files";
  EXPECT_GT(loaded, 10) << "some mutations (comments, duplicates of harmless lines) still load";
}

}  // namespace
}  // namespace sluice
