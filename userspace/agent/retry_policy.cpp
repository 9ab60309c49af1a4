#include "retry_policy.h"

namespace sluice {

bool retryOnAnotherGateway(int status, std::string_view result) {
  // The answer is the rules' (the same rules on every gateway) or about what the
  // origin's name resolves to (the same DNS): asking again would only shop for a
  // gateway that says yes.
  if (result == "host-not-allowed" || result.starts_with("bad-") || result.starts_with("dns-refused")) return false;
  switch (status) {
    case 429:  // a cap of this gateway (client-connection-limit)
    case 502:  // this gateway's DNS lookup or connect failed (dns-failed, upstream-connect)
    case 503:  // this gateway is overloaded or draining
    case 504:  // this gateway's connect to the origin timed out
      return true;
    default:  // 403, 400 and anything else: final
      return false;
  }
}

}  // namespace sluice
