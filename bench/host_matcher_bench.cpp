// Host rule lookup cost at 10, 1,000 and 100,000 rules: sluice's HostMatcher (hash
// lookups per label of the name) side by side with a linear scan over the rules (what a
// straightforward allowlist does). Run: build/bench/sluice_bench_host_matcher
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "host_matcher.h"

namespace {

using sluice::HostMatcher;

struct Rules {
  std::vector<std::string> names;  // half exact, half wildcard
  HostMatcher matcher;
};

Rules makeRules(int count) {
  Rules r;
  for (int i = 0; i < count; ++i) {
    std::string name = (i % 2 ? "*.svc" : "api") + std::to_string(i) + ".example" + std::to_string(i % 97) + ".com";
    r.names.push_back(name);
    r.matcher.add(name, {443});
  }
  return r;
}

// Queries: a hit on an exact rule, a hit below a wildcard, and a miss.
std::vector<std::string> queries(int count) {
  int last = count - 1, wildcard = count > 1 ? 1 : 0;
  return {"api" + std::to_string(last - last % 2) + ".example" + std::to_string((last - last % 2) % 97) + ".com",
          "a.b.svc" + std::to_string(wildcard) + ".example" + std::to_string(wildcard % 97) + ".com",
          "nothing.here.example.org"};
}

bool linearMatch(const std::vector<std::string>& rules, const std::string& host) {
  for (const auto& rule : rules) {
    if (rule.starts_with("*.")) {
      std::string_view suffix(rule.c_str() + 1);  // ".domain"
      if (host.size() > suffix.size() && host.ends_with(suffix)) return true;
    } else if (rule == host) {
      return true;
    }
  }
  return false;
}

void BM_HostMatcher(benchmark::State& state) {
  Rules rules = makeRules(static_cast<int>(state.range(0)));
  auto qs = queries(static_cast<int>(state.range(0)));
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(rules.matcher.match(qs[i++ % qs.size()], 443));
}

void BM_LinearScan(benchmark::State& state) {
  Rules rules = makeRules(static_cast<int>(state.range(0)));
  auto qs = queries(static_cast<int>(state.range(0)));
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(linearMatch(rules.names, qs[i++ % qs.size()]));
}

BENCHMARK(BM_HostMatcher)->Arg(10)->Arg(1000)->Arg(100000);
BENCHMARK(BM_LinearScan)->Arg(10)->Arg(1000)->Arg(100000);

}  // namespace

BENCHMARK_MAIN();
