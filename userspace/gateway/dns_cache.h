// Recent DNS answers of the gateway, kept for a fixed time (like Envoy's DNS refresh
// rate): without it every connection would pay a resolver setup and a round trip to the
// DNS server. Shared by the worker threads of one rule set.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
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
  std::optional<std::vector<IpAddress>> find(const std::string& host, Clock::time_point now = Clock::now()) const {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(host);
    if (it == entries_.end() || now >= it->second.expires) return std::nullopt;
    return it->second.addresses;
  }
  void put(const std::string& host, std::vector<IpAddress> addresses, Clock::time_point now = Clock::now()) {
    if (lifetime_.count() == 0 || addresses.empty()) return;  // failures are not cached
    std::lock_guard lock(mutex_);
    if (entries_.size() >= kMaxEntries) entries_.clear();  // bounded; refills on demand
    entries_[host] = Entry{std::move(addresses), now + lifetime_};
  }

 private:
  static constexpr size_t kMaxEntries = 10000;
  struct Entry {
    std::vector<IpAddress> addresses;  // as answered: guarded when dialed
    Clock::time_point expires;
  };
  std::chrono::milliseconds lifetime_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace sluice
