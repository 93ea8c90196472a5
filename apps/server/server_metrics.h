// What GET /metrics reports, in the Prometheus text format: gauges read from the engine service
// at scrape time, and counters and latency histograms the request handlers record. Every series
// is written twice: under a sparq: name and under the vLLM name that routers and dashboards
// already scrape (vllm:num_requests_running, vllm:kv_cache_usage_perc, ...).
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/engine/engine_service.h"

namespace sparq::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double seconds);
  // Appends "_bucket", "_sum" and "_count" lines for `name` with the given label set.
  void render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // one per bound, plus +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Thread-safe: handlers record from many threads; a scrape renders a consistent copy.
class ServerMetrics {
 public:
  explicit ServerMetrics(std::string model_name);

  void record_first_token(double seconds);
  void record_inter_token(double seconds);
  void record_finished(const std::string& finish_reason, int64_t prompt_tokens, int64_t generated_tokens);
  void record_http_status(int status);

  // The whole exposition text. kv_blocks_total/used describe the KV cache at scrape time.
  std::string render(const ServiceStats& stats) const;

 private:
  std::string labels_;
  mutable std::mutex mu_;
  Histogram ttft_, itl_;
  int64_t prompt_tokens_ = 0, generated_tokens_ = 0;
  std::map<std::string, int64_t> finished_;     // by finish reason
  std::map<int, int64_t> http_statuses_;        // by status code
};

}  // namespace sparq::server
