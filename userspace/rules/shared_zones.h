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

// Where the Public Suffix List is installed (Debian's publicsuffix package). Only
// `sluicectl validate` reads it; the daemons never need it.
inline constexpr const char* kPublicSuffixListPath = "/usr/share/publicsuffix/public_suffix_list.dat";

// Whether `zone` is a public suffix by the list's text (its ICANN and private sections:
// "co.uk", "github.io"; "*.ck" wildcards and "!www.ck" exceptions).
bool listedPublicSuffix(const std::string& zone, const std::string& listText);

}  // namespace sluice
