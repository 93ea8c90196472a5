#include "apps/server/server_metrics.h"

#include <algorithm>
#include <cstdio>

namespace sparq::server {

namespace {

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// Label values are the served model name and finish reasons; escape what the format requires.
std::string escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\', out += c;
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void header(std::string& out, const std::string& name, const char* type, const char* help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

// One metric under both names.
void both(std::string& out, const std::string& sparq_name, const std::string& vllm_name, const char* type,
          const char* help, const std::string& labels, double value) {
  for (const std::string& name : {sparq_name, vllm_name}) {
    header(out, name, type, help);
    out += name + "{" + labels + "} " + number(value) + "\n";
  }
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double seconds) {
  const size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), seconds) - bounds_.begin());
  ++counts_[i];
  sum_ += seconds;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    const std::string le = i < bounds_.size() ? number(bounds_[i]) : "+Inf";
    out += name + "_bucket{" + labels + ",le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_sum{" + labels + "} " + number(sum_) + "\n";
  out += name + "_count{" + labels + "} " + std::to_string(count_) + "\n";
}

// Buckets as vLLM's: a first token from milliseconds (a cached prefix) to minutes (a long prompt
// on a slow CPU); inter-token latencies from a fast GPU's to a CPU's under load.
ServerMetrics::ServerMetrics(std::string model_name)
    : labels_("model_name=\"" + escape_label(model_name) + "\""),
      ttft_({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
             80.0, 160.0, 640.0}),
      itl_({0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0}) {}

void ServerMetrics::record_first_token(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ttft_.observe(seconds);
}

void ServerMetrics::record_inter_token(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  itl_.observe(seconds);
}

void ServerMetrics::record_finished(const std::string& finish_reason, int64_t prompt_tokens, int64_t generated_tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  ++finished_[finish_reason];
  prompt_tokens_ += prompt_tokens;
  generated_tokens_ += generated_tokens;
}

void ServerMetrics::record_http_status(int status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++http_statuses_[status];
}

std::string ServerMetrics::render(const ServiceStats& s) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  const std::string& l = labels_;
  const double usage = s.kv_blocks_total > 0 ? static_cast<double>(s.kv_blocks_used) / static_cast<double>(s.kv_blocks_total) : 0.0;
  both(out, "sparq:requests_running", "vllm:num_requests_running", "gauge", "Requests in the running batch.", l, static_cast<double>(s.running));
  both(out, "sparq:requests_waiting", "vllm:num_requests_waiting", "gauge", "Requests waiting for a place in the batch.", l,
       static_cast<double>(s.waiting));
  both(out, "sparq:kv_cache_usage_ratio", "vllm:kv_cache_usage_perc", "gauge",
       "Fraction of KV-cache blocks held by sequences (1 = full).", l, usage);
  both(out, "sparq:prompt_tokens_total", "vllm:prompt_tokens_total", "counter", "Prompt tokens of finished requests.", l,
       static_cast<double>(prompt_tokens_));
  both(out, "sparq:generation_tokens_total", "vllm:generation_tokens_total", "counter", "Generated tokens of finished requests.", l,
       static_cast<double>(generated_tokens_));
  both(out, "sparq:prefix_cache_queries_total", "vllm:prefix_cache_queries_total", "counter",
       "Prompt tokens looked up in the prefix cache.", l, static_cast<double>(s.engine.prefix_lookup_tokens));
  both(out, "sparq:prefix_cache_hits_total", "vllm:prefix_cache_hits_total", "counter",
       "Prompt tokens found in the prefix cache.", l, static_cast<double>(s.engine.prefix_hit_tokens));
  both(out, "sparq:preemptions_total", "vllm:num_preemptions_total", "counter",
       "Sequences evicted from the KV cache and recomputed later.", l, static_cast<double>(s.engine.preemptions));
  both(out, "sparq:spec_decode_draft_tokens_total", "vllm:spec_decode_num_draft_tokens_total", "counter",
       "Speculative guesses checked.", l, static_cast<double>(s.engine.drafted_tokens));
  both(out, "sparq:spec_decode_accepted_tokens_total", "vllm:spec_decode_num_accepted_tokens_total", "counter",
       "Speculative guesses kept.", l, static_cast<double>(s.engine.accepted_tokens));
  header(out, "sparq:kv_cache_blocks", "gauge", "KV-cache blocks in all.");
  out += "sparq:kv_cache_blocks{" + l + "} " + std::to_string(s.kv_blocks_total) + "\n";
  header(out, "sparq:requests_refused_total", "counter", "Requests refused because the queue was full or the server was draining.");
  out += "sparq:requests_refused_total{" + l + "} " + std::to_string(s.refused) + "\n";
  for (const std::string name : {"sparq:requests_finished_total", "vllm:request_success_total"}) {
    header(out, name, "counter", "Finished requests by finish reason.");
    for (const auto& [reason, count] : finished_)
      out += name + "{" + l + ",finished_reason=\"" + escape_label(reason) + "\"} " + std::to_string(count) + "\n";
  }
  header(out, "sparq:http_responses_total", "counter", "HTTP responses by status code.");
  for (const auto& [status, count] : http_statuses_)
    out += "sparq:http_responses_total{" + l + ",status=\"" + std::to_string(status) + "\"} " + std::to_string(count) + "\n";
  for (const std::string name : {"sparq:time_to_first_token_seconds", "vllm:time_to_first_token_seconds"}) {
    header(out, name, "histogram", "Seconds from a request's arrival to its first generated token.");
    ttft_.render(out, name, l);
  }
  for (const std::string name : {"sparq:inter_token_latency_seconds", "vllm:inter_token_latency_seconds"}) {
    header(out, name, "histogram", "Seconds between consecutive generated tokens of a request.");
    itl_.render(out, name, l);
  }
  return out;
}

}  // namespace sparq::server
