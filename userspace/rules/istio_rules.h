// Istio networking resources as sluice reads them: ServiceEntry, Gateway,
// DestinationRule and VirtualService (networking.istio.io v1alpha3, v1beta1, v1),
// compiled into the agent's and the gateway's policies.
//
// What they mean here, as in Istio's egress gateway task: a host is allowed at the
// agent when a ServiceEntry registers it and a VirtualService routes it from `mesh` to
// the egress gateway; the gateway allows it when its Gateway lists it and a
// VirtualService bound to that Gateway routes it (tcp or tls) to a destination.
#pragma once

#include <yaml-cpp/yaml.h>

#include <memory>
#include <vector>

#include "config.h"
#include "yaml_reader.h"

namespace sluice {

class IstioResources {
 public:
  // Validates the document's fields now; cross-resource checks wait for compileInto.
  void add(std::shared_ptr<YamlReader> reader, const YAML::Node& doc);
  // Adds the hosts and routes the resources define. Throws ConfigError.
  void compileInto(Config& config) const;

 private:
  friend class IstioCompiler;
  struct Document {
    std::shared_ptr<YamlReader> reader;
    YAML::Node node;
    std::string kind;
    std::string name;
  };
  std::vector<Document> serviceEntries_, gateways_, destinationRules_, virtualServices_;
};

}  // namespace sluice
