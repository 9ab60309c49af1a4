#include "metrics_registry.h"

#include <prometheus/text_serializer.h>

#include <sstream>

namespace sluice {

MetricsRegistry::MetricsRegistry() : registry_(std::make_shared<prometheus::Registry>()) {}

void MetricsRegistry::addCollector(Collector collector) {
  std::lock_guard lock(mutex_);
  collectors_.push_back(std::move(collector));
}

std::vector<prometheus::MetricFamily> MetricsRegistry::collect() const {
  auto families = registry_->Collect();
  std::lock_guard lock(mutex_);
  for (const auto& collector : collectors_) {
    for (auto& family : collector()) families.push_back(std::move(family));
  }
  return families;
}

std::string MetricsRegistry::serialize() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, collect());
  return out.str();
}

prometheus::MetricFamily makeFamily(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

void addSample(prometheus::MetricFamily& family, std::map<std::string, std::string> labels, double value) {
  prometheus::ClientMetric metric;
  for (auto& [name, v] : labels) metric.label.push_back({name, v});
  switch (family.type) {
    case prometheus::MetricType::Counter:
      metric.counter.value = value;
      break;
    case prometheus::MetricType::Gauge:
      metric.gauge.value = value;
      break;
    default:
      metric.untyped.value = value;
      break;
  }
  family.metric.push_back(std::move(metric));
}

prometheus::Histogram::BucketBoundaries latencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}

prometheus::Histogram::BucketBoundaries durationBuckets() {
  return {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600};
}

}  // namespace sluice
