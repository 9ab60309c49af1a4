// Recent DNS answers of the gateway, positive and negative, each kept as long as its
// record TTL allows (raised to a floor and capped by the rules), in a bounded LRU: without it every connection
// would pay a round trip to the DNS server. A full cache evicts the least recently used
// name, never everything. One per resolver (one per worker): no locking.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "net_address.h"

namespace sluice {

struct DnsCacheLimits {
  std::chrono::milliseconds maxPositive{5000};  // upper bound on a record TTL; 0: no cache
  std::chrono::milliseconds negative{1000};     // how long a failure is remembered; 0: never
  size_t maxEntries = 10000;
  // Lower bound on a record TTL (at most maxPositive): a TTL of 0 or 1 s would otherwise
  // cost a query per connection, as Envoy's dns_min_refresh_rate also prevents.
  std::chrono::milliseconds minPositive{0};
  bool operator==(const DnsCacheLimits&) const = default;
};

class DnsCache {
 public:
  using Clock = std::chrono::steady_clock;
  struct Hit {
    std::vector<IpAddress> addresses;  // empty: a cached failure
    std::string error;                 // the failure, for a negative hit
  };

  explicit DnsCache(DnsCacheLimits limits) : limits_(limits) {}

  // A live answer for `host` (marked most recently used), or nothing.
  std::optional<Hit> find(const std::string& host, Clock::time_point now = Clock::now()) {
    auto it = index_.find(host);
    if (it == index_.end()) return std::nullopt;
    if (now >= it->second->expires) {
      lru_.erase(it->second);
      index_.erase(it);
      return std::nullopt;
    }
    lru_.splice(lru_.begin(), lru_, it->second);
    return Hit{it->second->addresses, it->second->error};
  }

  // `ttl`: the smallest TTL of the answer's records (CNAMEs included).
  void putAnswer(const std::string& host, std::vector<IpAddress> addresses, std::chrono::seconds ttl,
                 Clock::time_point now = Clock::now()) {
    auto floor = std::min(limits_.minPositive, limits_.maxPositive);
    auto lifetime = std::clamp<std::chrono::milliseconds>(ttl, floor, limits_.maxPositive);
    if (addresses.empty() || lifetime.count() <= 0) return;
    insert(host, std::move(addresses), {}, now + lifetime);
  }
  void putFailure(const std::string& host, std::string error, Clock::time_point now = Clock::now()) {
    if (limits_.negative.count() <= 0 || limits_.maxPositive.count() <= 0) return;
    insert(host, {}, std::move(error), now + limits_.negative);
  }

  size_t size() const { return index_.size(); }
  uint64_t evictions() const { return evictions_; }

 private:
  struct Entry {
    std::string host;
    std::vector<IpAddress> addresses;  // as answered: guarded when dialed
    std::string error;
    Clock::time_point expires;
  };

  void insert(const std::string& host, std::vector<IpAddress> addresses, std::string error, Clock::time_point expires) {
    if (limits_.maxEntries == 0) return;
    if (auto it = index_.find(host); it != index_.end()) {
      lru_.erase(it->second);
      index_.erase(it);
    }
    while (index_.size() >= limits_.maxEntries) {
      index_.erase(lru_.back().host);
      lru_.pop_back();
      ++evictions_;
    }
    lru_.push_front(Entry{host, std::move(addresses), std::move(error), expires});
    index_.emplace(host, lru_.begin());
  }

  DnsCacheLimits limits_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  uint64_t evictions_ = 0;
};

}  // namespace sluice
