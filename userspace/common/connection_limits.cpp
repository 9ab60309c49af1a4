#include "connection_limits.h"

#include "memory_trim.h"

namespace sluice {

struct ConnectionLimits::Slot::State {
  mutable std::mutex mutex;
  uint32_t totalCap = 0;
  uint32_t keyCap = 0;
  size_t active = 0;
  std::unordered_map<std::string, uint32_t> perKey;
  uint64_t refusedTotal = 0;
  uint64_t refusedKey = 0;
};

ConnectionLimits::Slot& ConnectionLimits::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    release();
    state_ = std::move(other.state_);
    key_ = std::move(other.key_);
    verdict_ = other.verdict_;
    other.state_ = nullptr;
  }
  return *this;
}

void ConnectionLimits::Slot::release() {
  if (!state_ || verdict_ != Verdict::Admitted) {
    state_ = nullptr;
    return;
  }
  size_t active;
  {
    std::lock_guard lock(state_->mutex);
    auto it = state_->perKey.find(key_);
    if (it != state_->perKey.end() && --it->second == 0) state_->perKey.erase(it);
    active = --state_->active;
  }
  state_ = nullptr;
  noteConnectionCount(active);
}

ConnectionLimits::ConnectionLimits(uint32_t total, uint32_t perKey) : state_(std::make_shared<Slot::State>()) {
  setCaps(total, perKey);
}

void ConnectionLimits::setCaps(uint32_t total, uint32_t perKey) {
  std::lock_guard lock(state_->mutex);
  state_->totalCap = total;
  state_->keyCap = perKey;
}

ConnectionLimits::Slot ConnectionLimits::acquire(const std::string& key) {
  Slot slot;
  std::lock_guard lock(state_->mutex);
  if (state_->totalCap != 0 && state_->active >= state_->totalCap) {
    ++state_->refusedTotal;
    slot.verdict_ = Verdict::OverTotal;
    return slot;
  }
  uint32_t& count = state_->perKey[key];
  if (state_->keyCap != 0 && count >= state_->keyCap) {
    if (count == 0) state_->perKey.erase(key);
    ++state_->refusedKey;
    slot.verdict_ = Verdict::OverKey;
    return slot;
  }
  ++count;
  ++state_->active;
  slot.state_ = state_;
  slot.key_ = key;
  slot.verdict_ = Verdict::Admitted;
  return slot;
}

size_t ConnectionLimits::active() const {
  std::lock_guard lock(state_->mutex);
  return state_->active;
}

size_t ConnectionLimits::activeFor(const std::string& key) const {
  std::lock_guard lock(state_->mutex);
  auto it = state_->perKey.find(key);
  return it == state_->perKey.end() ? 0 : it->second;
}

uint64_t ConnectionLimits::refusedTotal() const {
  std::lock_guard lock(state_->mutex);
  return state_->refusedTotal;
}

uint64_t ConnectionLimits::refusedKey() const {
  std::lock_guard lock(state_->mutex);
  return state_->refusedKey;
}

const char* toString(ConnectionLimits::Verdict verdict) {
  switch (verdict) {
    case ConnectionLimits::Verdict::Admitted:
      return "admitted";
    case ConnectionLimits::Verdict::OverTotal:
      return "over-total";
    case ConnectionLimits::Verdict::OverKey:
      return "over-key";
  }
  return "?";
}

}  // namespace sluice
