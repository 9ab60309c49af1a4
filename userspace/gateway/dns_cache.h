// Recent DNS answers of the gateway, kept for a fixed time (like Envoy's DNS refresh
// rate): without it every connection would pay a resolver setup and a round trip to the
// DNS server. Used from the I/O thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace sluice {

class DnsCache {
 public:
  using Clock = std::chrono::steady_clock;
  explicit DnsCache(std::chrono::milliseconds lifetime) : lifetime_(lifetime) {}

  // The addresses of `host` if answered less than the lifetime ago.
  const std::vector<uint32_t>* find(const std::string& host, Clock::time_point now = Clock::now()) const {
    auto it = entries_.find(host);
    if (it == entries_.end() || now >= it->second.expires) return nullptr;
    return &it->second.addressesBe;
  }
  void put(const std::string& host, std::vector<uint32_t> addressesBe, Clock::time_point now = Clock::now()) {
    if (lifetime_.count() == 0 || addressesBe.empty()) return;  // failures are not cached
    if (entries_.size() >= kMaxEntries) entries_.clear();       // bounded; refills on demand
    entries_[host] = Entry{std::move(addressesBe), now + lifetime_};
  }

 private:
  static constexpr size_t kMaxEntries = 10000;
  struct Entry {
    std::vector<uint32_t> addressesBe;
    Clock::time_point expires;
  };
  std::chrono::milliseconds lifetime_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace sluice
