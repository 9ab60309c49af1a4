// The stop of a gateway dial in progress, when its stream is gone: reset by the agent (its
// app gave up, or its drain) or by the gateway's own drain deadline. It ends the dial
// whichever wait it is in (its DNS lookup, its connects): no connection to the origin
// for a stream that is gone, and no stream outliving the drain.
#pragma once

#include <functional>
#include <string>
#include <utility>

namespace sluice {

class DialCancel {
 public:
  // The first cancel's reason is the dial's failure ("drain-deadline", "reset:<why>").
  void cancel(const std::string& reason) {
    if (cancelled_) return;
    cancelled_ = true;
    reason_ = reason;
    if (auto stopWait = std::exchange(onCancel_, nullptr)) stopWait();
  }
  bool cancelled() const { return cancelled_; }
  const std::string& reason() const { return reason_; }

 private:
  friend class DialCancelHook;
  std::function<void()> onCancel_;
  std::string reason_;
  bool cancelled_ = false;
};

// While it lives (a wait of the dial), a cancel runs `stopWait` (closes the sockets, wakes
// the waiter). Cleared on every way out, so a later cancel never reaches what is gone.
// The dial's waits follow one another: a hook replaces the one before, never nests.
class DialCancelHook {
 public:
  DialCancelHook(DialCancel* cancel, std::function<void()> stopWait) : cancel_(cancel) {
    if (cancel_) cancel_->onCancel_ = std::move(stopWait);
  }
  ~DialCancelHook() {
    if (cancel_) cancel_->onCancel_ = nullptr;
  }
  DialCancelHook(const DialCancelHook&) = delete;
  DialCancelHook& operator=(const DialCancelHook&) = delete;

 private:
  DialCancel* cancel_;
};

inline bool isCancelled(const DialCancel* cancel) {
  return cancel && cancel->cancelled();
}

}  // namespace sluice
