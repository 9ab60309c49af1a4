// What the gateway's admin endpoint serves: /metrics, /healthz, /readyz (rules loaded;
// certificate loaded and inside its validity window; not draining) and /config (the rules in force).
#pragma once

#include "admin_server.h"
#include "certificate_reloader.h"
#include "drain.h"
#include "metrics_registry.h"
#include "rules_reloader.h"

namespace sluice {

struct GatewayAdminContext {
  const RulesReloader* reloader;
  const CertificateReloader* certificates;
  MetricsRegistry* metrics;
  const DrainStatus* drain = nullptr;  // draining: /readyz says not ready
};

void installGatewayAdmin(AdminServer& server, GatewayAdminContext context);

}  // namespace sluice
