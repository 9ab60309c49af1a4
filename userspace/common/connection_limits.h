// Caps on connections, in all and per key (a pod's cgroup id, a peer address, a client
// identity), so one tenant cannot take a daemon's capacity from the others. Thread-safe:
// one object is shared by every worker of a daemon. acquire() is the only check: a slot
// is held for the connection's life and released when the Slot is destroyed.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace sluice {

class ConnectionLimits {
 public:
  enum class Verdict { Admitted, OverTotal, OverKey };

  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept { *this = std::move(other); }
    Slot& operator=(Slot&& other) noexcept;
    ~Slot() { release(); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

    bool admitted() const { return verdict_ == Verdict::Admitted && state_ != nullptr; }
    Verdict verdict() const { return verdict_; }
    void release();

   private:
    friend class ConnectionLimits;
    struct State;
    std::shared_ptr<State> state_;
    std::string key_;
    Verdict verdict_ = Verdict::OverTotal;
  };

  // 0 for a cap: no cap.
  ConnectionLimits(uint32_t total, uint32_t perKey);
  void setCaps(uint32_t total, uint32_t perKey);

  Slot acquire(const std::string& key);

  size_t active() const;
  size_t activeFor(const std::string& key) const;
  uint64_t refusedTotal() const;  // over the total cap, since start
  uint64_t refusedKey() const;    // over a per-key cap, since start

 private:
  std::shared_ptr<Slot::State> state_;
};

const char* toString(ConnectionLimits::Verdict verdict);

}  // namespace sluice
