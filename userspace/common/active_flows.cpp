#include "active_flows.h"

#include <vector>

namespace sluice {

ActiveFlows::Flow ActiveFlows::track(asio::any_io_executor executor) {
  auto entry = std::make_shared<Entry>();
  entry->executor = std::move(executor);
  std::lock_guard lock(mutex_);
  const uint64_t id = nextId_++;
  entries_.emplace(id, entry);
  count_.fetch_add(1, std::memory_order_relaxed);
  return Flow(this, id, std::move(entry));
}

void ActiveFlows::Flow::end() {
  if (!owner_) return;
  entry_->live = false;
  entry_->reset = nullptr;
  {
    std::lock_guard lock(owner_->mutex_);
    owner_->entries_.erase(id_);
  }
  owner_->count_.fetch_sub(1, std::memory_order_relaxed);
  owner_ = nullptr;
}

size_t ActiveFlows::resetAll() {
  std::vector<std::shared_ptr<Entry>> entries;
  {
    std::lock_guard lock(mutex_);
    entries.reserve(entries_.size());
    for (auto& [id, entry] : entries_) entries.push_back(entry);
  }
  for (auto& entry : entries) {
    asio::post(entry->executor, [this, entry] {
      if (!entry->live || entry->resetByDrain) return;
      entry->resetByDrain = true;
      resetDone_.fetch_add(1, std::memory_order_relaxed);
      // A copy: the reset may end the flow (and clear entry->reset) while it runs.
      auto reset = entry->reset;
      if (reset) reset();
    });
  }
  return entries.size();
}

}  // namespace sluice
