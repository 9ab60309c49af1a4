// Which gateway answers the agent retries on another gateway: the pairs
// (status, sluice-result) gateway_server.cpp sends.
#include "retry_policy.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(RetryPolicy, PolicyAndRequestAnswersAreFinal) {
  EXPECT_FALSE(retryOnAnotherGateway(403, "host-not-allowed"));
  EXPECT_FALSE(retryOnAnotherGateway(400, "bad-method"));
  EXPECT_FALSE(retryOnAnotherGateway(400, "bad-authority"));
  // The address guard refused every address the name has: the same DNS answers the same.
  EXPECT_FALSE(retryOnAnotherGateway(502, "dns-refused:private"));
  EXPECT_FALSE(retryOnAnotherGateway(502, "dns-refused:loopback"));
}

TEST(RetryPolicy, TheGatewaysOwnFailuresAreRetried) {
  EXPECT_TRUE(retryOnAnotherGateway(502, "upstream-connect:Connection refused"));
  EXPECT_TRUE(retryOnAnotherGateway(502, "upstream-connect-failed"));
  EXPECT_TRUE(retryOnAnotherGateway(504, "upstream-connect-timeout"));
  EXPECT_TRUE(retryOnAnotherGateway(502, "dns-failed:www.googleapis.com:Could not contact DNS servers"));
  EXPECT_TRUE(retryOnAnotherGateway(504, "dns-failed:www.googleapis.com:Timeout while contacting DNS servers"));
  EXPECT_TRUE(retryOnAnotherGateway(429, "client-connection-limit"));
  EXPECT_TRUE(retryOnAnotherGateway(503, ""));
}

TEST(RetryPolicy, UnknownAnswersAreFinal) {
  EXPECT_FALSE(retryOnAnotherGateway(500, ""));
  EXPECT_FALSE(retryOnAnotherGateway(404, ""));
  EXPECT_FALSE(retryOnAnotherGateway(401, "something-new"));
  // A retryable status cannot make a policy answer retryable.
  EXPECT_FALSE(retryOnAnotherGateway(503, "host-not-allowed"));
}

}  // namespace
}  // namespace sluice
