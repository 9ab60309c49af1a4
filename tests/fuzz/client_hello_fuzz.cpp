// libFuzzer target: the ClientHello parser on attacker bytes, under ASan and UBSan. Any
// crash, overread or hang is a bug; the invariants below are what callers rely on.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "client_hello.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  for (size_t cap : {size_t{512}, size_t{16384}, size_t{65541}}) {
    sluice::HelloResult r = sluice::parseClientHello(bytes, cap);
    if (r.status == sluice::HelloStatus::Done) {
      if (r.helloBytes == 0 || r.helloBytes > size || r.helloBytes > cap) std::abort();
      if (r.serverName && (r.serverName->empty() || r.serverName->size() > 65535)) std::abort();
    }
    if ((r.status == sluice::HelloStatus::Error || r.status == sluice::HelloStatus::NotTls) && r.error.empty()) {
      std::abort();
    }
    // A prefix of what was judged need-more can only need more too.
    if (r.status == sluice::HelloStatus::NeedMore && size > 0) {
      auto prefix = sluice::parseClientHello(bytes.first(size - 1), cap);
      if (prefix.status != sluice::HelloStatus::NeedMore) std::abort();
    }
  }
  return 0;
}
