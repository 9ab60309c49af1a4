// `${NAME}` in the values of sluice's own rules documents takes the environment
// variable NAME, so one ConfigMap serves every node (the agent's listen address is the
// node's IP, from the downward API). Only values are expanded, never keys, and never
// Istio resources (kept verbatim). `$${` writes a literal `${`. An unset or empty
// variable, or a malformed reference, is an error naming the place.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <optional>
#include <string>

#include "yaml_reader.h"

namespace sluice {

using EnvironmentLookup = std::function<std::optional<std::string>(const std::string& name)>;

// The process environment (getenv); an empty value counts as unset.
EnvironmentLookup processEnvironment();

// Expands one value; throws std::invalid_argument with the reason (no place).
std::string expandVariables(const std::string& text, const EnvironmentLookup& lookup);

// Expands every scalar value in the document, in place; fails through `r` with the place.
void expandDocument(const YamlReader& r, YAML::Node document, const EnvironmentLookup& lookup);

}  // namespace sluice
