// Recent DNS answers of the gateway, kept for a fixed time (like Envoy's DNS refresh
// rate): without it every connection would pay a resolver setup and a round trip to the
// DNS server. Used from the I/O thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "net_address.h"

namespace sluice {

class DnsCache {
 public:
  using Clock = std::chrono::steady_clock;
  explicit DnsCache(std::chrono::milliseconds lifetime) : lifetime_(lifetime) {}

  // The addresses of `host` if answered less than the lifetime ago.
  const std::vector<IpAddress>* find(const std::string& host, Clock::time_point now = Clock::now()) const {
    auto it = entries_.find(host);
    if (it == entries_.end() || now >= it->second.expires) return nullptr;
    return &it->second.addresses;
  }
  void put(const std::string& host, std::vector<IpAddress> addresses, Clock::time_point now = Clock::now()) {
    if (lifetime_.count() == 0 || addresses.empty()) return;  // failures are not cached
    if (entries_.size() >= kMaxEntries) entries_.clear();     // bounded; refills on demand
    entries_[host] = Entry{std::move(addresses), now + lifetime_};
  }

 private:
  static constexpr size_t kMaxEntries = 10000;
  struct Entry {
    std::vector<IpAddress> addresses;  // as answered: guarded when dialed
    Clock::time_point expires;
  };
  std::chrono::milliseconds lifetime_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace sluice
