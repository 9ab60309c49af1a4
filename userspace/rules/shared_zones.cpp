#include "shared_zones.h"

#include <array>
#include <sstream>
#include <string_view>
#include <unordered_set>

namespace sluice {
namespace {

// Zones whose names belong to many unrelated customers.
constexpr std::array<std::string_view, 34> kSharedZones = {"amazonaws.com",
                                                           "s3.amazonaws.com",
                                                           "elasticbeanstalk.com",
                                                           "cloudfront.net",
                                                           "awsapprunner.com",
                                                           "appspot.com",
                                                           "storage.googleapis.com",
                                                           "run.app",
                                                           "web.app",
                                                           "firebaseapp.com",
                                                           "cloudfunctions.net",
                                                           "azurewebsites.net",
                                                           "blob.core.windows.net",
                                                           "core.windows.net",
                                                           "cloudapp.net",
                                                           "azureedge.net",
                                                           "trafficmanager.net",
                                                           "herokuapp.com",
                                                           "herokudns.com",
                                                           "github.io",
                                                           "githubusercontent.com",
                                                           "gitlab.io",
                                                           "netlify.app",
                                                           "vercel.app",
                                                           "pages.dev",
                                                           "workers.dev",
                                                           "fastly.net",
                                                           "akamaized.net",
                                                           "edgekey.net",
                                                           "ngrok.io",
                                                           "ngrok-free.app",
                                                           "onrender.com",
                                                           "fly.dev",
                                                           "digitaloceanspaces.com"};

// Second-level labels under which country registries sell names (co.uk, com.au, ...).
constexpr std::array<std::string_view, 14> kSecondLevels = {"co", "com", "net", "org", "gov", "edu", "ac",
                                                            "or", "ne",  "go",  "gob", "ltd", "plc", "nom"};

}  // namespace

std::optional<std::string> broadWildcardRisk(const std::string& rule) {
  if (!rule.starts_with("*.")) return std::nullopt;
  const std::string zone = rule.substr(2);
  for (auto shared : kSharedZones) {
    // "*.amazonaws.com" covers s3.amazonaws.com's tenants too.
    if (shared == zone || std::string_view(shared).ends_with("." + zone)) {
      return "'" + rule + "' covers " + std::string(shared) +
             ", where anyone can get a name: any tenant there is reachable, and the provider may route an "
             "allowed name to another tenant (domain fronting). Name the hosts you need";
    }
  }
  const auto dot = zone.find('.');
  if (dot != std::string::npos && zone.find('.', dot + 1) == std::string::npos && zone.size() - dot - 1 == 2) {
    const std::string_view second(zone.data(), dot);
    for (auto label : kSecondLevels) {
      if (label == second) {
        return "'" + rule + "' covers a public suffix (" + zone +
               "), where anyone can register a name: every such domain is reachable. Name the domains you need";
      }
    }
  }
  return std::nullopt;
}

bool listedPublicSuffix(const std::string& zone, const std::string& listText) {
  std::unordered_set<std::string> rules;
  std::istringstream in(listText);
  for (std::string line; std::getline(in, line);) {
    line = line.substr(0, line.find_first_of(" \t\r"));
    if (line.empty() || line.starts_with("//")) continue;
    rules.insert(line);
  }
  if (rules.contains(zone)) return true;
  const auto dot = zone.find('.');
  if (dot == std::string::npos) return false;
  return rules.contains("*" + zone.substr(dot)) && !rules.contains("!" + zone);
}

}  // namespace sluice
