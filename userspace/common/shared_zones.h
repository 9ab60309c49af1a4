// Wildcards over zones where anyone can get a name: public suffixes (co.uk) and
// multi-tenant hosting (cloudfront.net, github.io). "*.cloudfront.net" lets a pod reach
// every customer's distribution, and a CDN may route a hello for an allowed name to any
// tenant behind it (domain fronting).
#pragma once

#include <optional>
#include <string>

namespace sluice {

// For a normalised host rule: why it is risky, or nullopt. Compiled in (the daemons
// need no public suffix list at run time): a short list of shared hosting zones, and
// any "*.<second-level>.<country>" such as *.co.uk or *.com.au.
std::optional<std::string> broadWildcardRisk(const std::string& rule);

}  // namespace sluice
