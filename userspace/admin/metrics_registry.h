// A daemon's metrics: prometheus-cpp families updated as things happen, plus collectors
// that read state at scrape time (kernel counters, reload counts, certificate expiry).
// The exposition is prometheus-cpp's TextSerializer.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace sluice {

class MetricsRegistry {
 public:
  using Collector = std::function<std::vector<prometheus::MetricFamily>()>;

  MetricsRegistry();
  prometheus::Registry& registry() { return *registry_; }
  // Runs at every scrape, on the admin server's thread.
  void addCollector(Collector collector);
  // The Prometheus text format of everything registered.
  std::string serialize() const;
  std::vector<prometheus::MetricFamily> collect() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  mutable std::mutex mutex_;
  std::vector<Collector> collectors_;
};

// Building blocks for collectors.
prometheus::MetricFamily makeFamily(std::string name, std::string help, prometheus::MetricType type);
void addSample(prometheus::MetricFamily& family, std::map<std::string, std::string> labels, double value);

// Latency buckets in seconds: 100 µs .. 30 s (what sluice adds to a connect is a few
// hundred µs: a 1 ms first bucket could not show it).
prometheus::Histogram::BucketBoundaries latencyBuckets();
// Flow duration buckets in seconds: 10 ms .. 1 h.
prometheus::Histogram::BucketBoundaries durationBuckets();

}  // namespace sluice
