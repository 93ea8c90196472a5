#include "apps/server/api_server.h"

#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <thread>

#include "apps/server/api_error.h"
#include "apps/server/completion_job.h"
#include "runtime/core/error.h"
#include "runtime/tokenizer/stream_detokenizer.h"

namespace sparq::server {

namespace {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// Per connection thread: when the request started and what its handler wants in the log line.
thread_local Clock::time_point t_request_start;
thread_local std::string t_log_detail;
thread_local std::string t_request_id;

std::string dump(const Json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

void respond_json(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(dump(body), "application/json");
}

void respond_error(httplib::Response& res, const ApiError& e) {
  if (e.status == 429 || e.status == 503) res.set_header("Retry-After", "1");
  t_log_detail = (e.code.empty() ? e.type : e.code) + (e.param.empty() ? "" : " param=" + e.param) + ": " + std::string(e.what()).substr(0, 200);
  respond_json(res, e.status, error_body(e));
}

std::string new_request_id() {
  thread_local uint64_t counter = 0;
  char buf[48];
  std::snprintf(buf, sizeof buf, "req-%llx-%llx", static_cast<unsigned long long>(std::chrono::system_clock::now().time_since_epoch().count()),
                static_cast<unsigned long long>(++counter));
  return buf;
}

// Equal-time comparison: how long a wrong key takes must not tell how much of it was right.
bool same_secret(const std::string& given, const std::string& key) {
  unsigned char diff = given.size() != key.size() ? 1 : 0;
  for (size_t i = 0; i < given.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ key[i % key.size()]);
  return diff == 0;
}

// A special token of tokenizer_config.json: a string, or {"content": ...}; null when absent.
Json special_token(const nlohmann::json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return nullptr;
  const auto& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return nullptr;
}

}  // namespace

ApiServer::ApiServer(ServerOptions options) : options_(std::move(options)), http_(std::make_unique<httplib::Server>()) {
  const int threads = options_.http_threads;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http_->set_payload_max_length(options_.max_request_bytes);
  http_->set_keep_alive_timeout(5);
  http_->set_keep_alive_max_count(1000);
  http_->set_read_timeout(30);
  http_->set_write_timeout(30);
  install_routes();
}

ApiServer::~ApiServer() { stop(); }

int ApiServer::bind() {
  if (options_.port == 0) {
    const int port = http_->bind_to_any_port(options_.host);
    if (port < 0) fail("cannot listen on ", options_.host, " (no free port, or the address is not this machine's)");
    return port;
  }
  if (!http_->bind_to_port(options_.host, options_.port))
    fail("cannot listen on ", options_.host, ":", options_.port, " (the port is taken, or the address is not this machine's)");
  return options_.port;
}

void ApiServer::run() {
  run_started_ = true;
  if (!stop_requested_) http_->listen_after_bind();
  run_finished_ = true;
}

void ApiServer::stop() {
  if (!http_) return;
  // httplib forgets a stop() that comes before listen_after_bind() has marked the server running,
  // and run() would then listen for ever (a start-up failure right after bind()). Either run()
  // sees the request and does not listen, or this waits until it listens and then stops it.
  stop_requested_ = true;
  while (run_started_ && !run_finished_ && !http_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  http_->stop();
}

void ApiServer::set_ready(const ServingContext* context) {
  context_.store(context, std::memory_order_release);
  state_.store(State::Ready, std::memory_order_release);
}

void ApiServer::set_draining() { state_.store(State::Draining, std::memory_order_release); }

void ApiServer::set_selftest(const nlohmann::json& report, bool passed) {
  {
    std::lock_guard<std::mutex> lock(selftest_mutex_);
    selftest_ = report;
  }
  if (!passed) state_.store(State::SelftestFailed, std::memory_order_release);
}

bool ApiServer::authorized(const httplib::Request& req) const {
  if (options_.api_key.empty()) return true;
  const std::string header = req.get_header_value("Authorization");
  const std::string prefix = "Bearer ";
  if (header.compare(0, prefix.size(), prefix) != 0) return false;
  return same_secret(header.substr(prefix.size()), options_.api_key);
}

const ServingContext* ApiServer::ready_context(httplib::Response& res) const {
  const State s = state_.load(std::memory_order_acquire);
  if (s != State::Ready) {
    respond_error(res, ApiError(503, "service_unavailable", "unavailable", "",
                                s == State::Loading          ? "the model is still loading; try again shortly"
                                : s == State::SelftestFailed ? "the model failed its self-test on this machine (see /health)"
                                                             : "the server is shutting down and accepts no new requests"));
    return nullptr;
  }
  return context_.load(std::memory_order_acquire);
}

void ApiServer::install_routes() {
  httplib::Server& h = *http_;

  h.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    t_request_start = Clock::now();
    t_log_detail.clear();
    t_request_id = req.has_header("X-Request-Id") ? req.get_header_value("X-Request-Id").substr(0, 128) : new_request_id();
    res.set_header("X-Request-Id", t_request_id);
    return httplib::Server::HandlerResponse::Unhandled;
  });

  // Whatever httplib answers by itself (no route, body too large, malformed HTTP) also gets the
  // OpenAI error object.
  h.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (res.status == 413) {
      respond_error(res, ApiError(413, "invalid_request_error", "payload_too_large", "", "the request body is too large"));
    } else if (res.status == 404) {
      respond_error(res, ApiError(404, "not_found_error", "not_found", "", "no route " + req.method + " " + req.path));
    } else {
      respond_error(res, ApiError(res.status, "invalid_request_error", "", "", "the HTTP request was refused (" + std::to_string(res.status) + ")"));
    }
    return httplib::Server::HandlerResponse::Handled;
  }));

  h.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    respond_error(res, ApiError(500, "server_error", "internal_error", "", what));
  });

  h.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    if (const ServingContext* c = context_.load(std::memory_order_acquire)) c->metrics->record_http_status(res.status);
    if (!options_.log_requests) return;
    // Health checks and scrapes come every few seconds from every balancer and collector: only
    // their failures are worth a line.
    if ((req.path == "/health" || req.path == "/metrics") && res.status == 200) return;
    char when[32];
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t_request_start).count();
    std::fprintf(stderr, "%s %s %s %s %d %.1fms %s%s%s\n", when, req.remote_addr.c_str(), req.method.c_str(), req.path.c_str(),
                 res.status, ms, t_request_id.c_str(), t_log_detail.empty() ? "" : " ", t_log_detail.c_str());
  });

  // Each handler turns an ApiError into its error response.
  // The API key is checked here rather than before routing: by now httplib has read the body, so a
  // refused request leaves nothing unread on a keep-alive connection.
  auto guarded = [this](auto fn) {
    return [this, fn](const httplib::Request& req, httplib::Response& res) {
      try {
        if (!authorized(req))
          throw ApiError(401, "authentication_error", "invalid_api_key", "",
                         req.has_header("Authorization") ? "the API key is wrong" : "an API key is required (Authorization: Bearer KEY)");
        fn(req, res);
      } catch (const ApiError& e) {
        respond_error(res, e);
      }
    };
  };
  h.Get("/health", [this](const httplib::Request&, httplib::Response& res) { health(res); });
  h.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) { metrics(res); });
  h.Get("/v1/models", guarded([this](const httplib::Request& q, httplib::Response& r) { models(q, r); }));
  h.Get("/tokenizer_info", guarded([this](const httplib::Request& q, httplib::Response& r) { tokenizer_info(q, r); }));
  h.Post("/tokenize", guarded([this](const httplib::Request& q, httplib::Response& r) { tokenize(q, r); }));
  h.Post("/detokenize", guarded([this](const httplib::Request& q, httplib::Response& r) { detokenize(q, r); }));
  h.Post("/v1/chat/completions", guarded([this](const httplib::Request& q, httplib::Response& r) { completions(q, r, true); }));
  h.Post("/v1/completions", guarded([this](const httplib::Request& q, httplib::Response& r) { completions(q, r, false); }));
}

void ApiServer::health(httplib::Response& res) const {
  const State s = state_.load(std::memory_order_acquire);
  Json selftest;
  {
    std::lock_guard<std::mutex> lock(selftest_mutex_);
    selftest = selftest_;
  }
  if (s == State::Ready && selftest.is_null()) {
    res.status = 200;
    return;
  }
  Json body{{"status", s == State::Ready            ? "ok"
                       : s == State::Loading        ? "loading"
                       : s == State::SelftestFailed ? "selftest_failed"
                                                    : "draining"}};
  if (!selftest.is_null()) body["selftest"] = std::move(selftest);
  respond_json(res, s == State::Ready ? 200 : 503, body);
}

void ApiServer::metrics(httplib::Response& res) const {
  const ServingContext* c = context_.load(std::memory_order_acquire);
  if (!c) {
    res.status = 503;
    res.set_content("# the model is still loading\n", "text/plain; version=0.0.4");
    return;
  }
  res.set_content(c->metrics->render(c->service->stats()), "text/plain; version=0.0.4");
}

void ApiServer::models(const httplib::Request&, httplib::Response& res) {
  const ServingContext* c = ready_context(res);
  if (!c) return;
  Json m;
  m["id"] = c->model_name;
  m["object"] = "model";
  m["created"] = c->created;
  m["owned_by"] = "sparq";
  m["root"] = c->model_name;
  m["max_model_len"] = c->context_length;
  respond_json(res, 200, Json{{"object", "list"}, {"data", Json::array({m})}});
}

void ApiServer::tokenizer_info(const httplib::Request&, httplib::Response& res) {
  const ServingContext* c = ready_context(res);
  if (!c) return;
  const LoadedTokenizer& t = *c->tokenizer;
  Json j;
  j["tokenizer_class"] = t.config.is_object() && t.config.contains("tokenizer_class") && t.config["tokenizer_class"].is_string()
                             ? t.config["tokenizer_class"].get<std::string>()
                             : std::string(c->tok().kind());
  j["bos_token"] = t.bos_token.empty() ? Json(nullptr) : Json(t.bos_token);
  j["eos_token"] = t.eos_token.empty() ? Json(nullptr) : Json(t.eos_token);
  j["pad_token"] = special_token(t.config, "pad_token");
  j["unk_token"] = special_token(t.config, "unk_token");
  j["chat_template"] = t.chat_template.empty() ? Json(nullptr) : Json(t.chat_template);
  j["model_max_length"] = c->context_length;
  j["vocab_size"] = c->vocab;
  respond_json(res, 200, j);
}

void ApiServer::tokenize(const httplib::Request& req, httplib::Response& res) {
  const ServingContext* c = ready_context(res);
  if (!c) return;
  const TokenizeRequest r = parse_tokenize_request(req.body);
  const std::string text = r.is_chat ? c->render_chat(r.messages, r.add_generation_prompt) : r.prompt;
  const std::vector<int32_t> ids = c->tok().encode(text, r.add_special_tokens);
  Json j;
  j["count"] = ids.size();
  j["max_model_len"] = c->context_length;
  j["tokens"] = ids;
  if (r.return_token_strs) {
    Json strs = Json::array();
    for (int32_t id : ids) strs.push_back(c->tok().id_to_token(id));
    j["token_strs"] = std::move(strs);
  } else {
    j["token_strs"] = nullptr;
  }
  respond_json(res, 200, j);
}

void ApiServer::detokenize(const httplib::Request& req, httplib::Response& res) {
  const ServingContext* c = ready_context(res);
  if (!c) return;
  const std::vector<int64_t> wide = parse_detokenize_request(req.body);
  std::vector<int32_t> ids;
  for (size_t i = 0; i < wide.size(); ++i) {
    if (wide[i] >= c->vocab)
      invalid_value("tokens[" + std::to_string(i) + "]", "token " + std::to_string(wide[i]) + " is outside the vocabulary of " +
                                                            std::to_string(c->vocab));
    ids.push_back(static_cast<int32_t>(wide[i]));
  }
  respond_json(res, 200, Json{{"prompt", c->tok().decode(ids, /*skip_special=*/false)}});
}

void ApiServer::completions(const httplib::Request& req, httplib::Response& res, bool chat) {
  const auto arrival = Clock::now();
  const ServingContext* c = ready_context(res);
  if (!c) return;
  std::unique_ptr<CompletionJob> started = chat ? CompletionJob::start_chat(*c, parse_chat_request(req.body), arrival)
                                                : CompletionJob::start_completion(*c, parse_completion_request(req.body), arrival);
  std::shared_ptr<CompletionJob> job(std::move(started));
  const bool log = options_.log_requests;

  if (job->streaming()) {
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");  // nginx: pass events through as they come
    res.set_chunked_content_provider(
        "text/event-stream",
        [job, log](size_t, httplib::DataSink& sink) {
          bool gone = false;
          auto last_write = Clock::now();
          auto write = [&](const std::string& event) {
            if (gone || !sink.write(event.data(), event.size())) return !(gone = true);
            last_write = Clock::now();
            return true;
          };
          // Pings during a long prefill keep proxies from timing out and find a client that left.
          while (!job->pump(std::chrono::milliseconds(250), write)) {
            if (gone) break;
            if (Clock::now() - last_write >= std::chrono::seconds(1)) write(": ping\n\n");
            if (gone) break;
          }
          if (log) t_log_detail = job->summary() + (gone ? " client-disconnected" : "");
          if (gone) {
            job->cancel();
            return false;
          }
          write(job->stream_tail());
          sink.done();
          return true;
        },
        [job](bool success) {
          if (!success) job->cancel();
        });
    return;
  }

  // Not streamed: a quick answer goes out whole with its real status. A long one commits to 200
  // and sends spaces (leading whitespace is valid JSON) while it waits, so a client that left is
  // noticed by a failed write and its request cancelled instead of running to the end.
  if (job->pump(std::chrono::milliseconds(500))) {
    if (log) t_log_detail = job->summary();
    respond_json(res, job->status(), job->response());
    return;
  }
  res.set_chunked_content_provider(
      "application/json",
      [job, log](size_t, httplib::DataSink& sink) {
        while (!job->pump(std::chrono::milliseconds(1000))) {
          if (!sink.write(" ", 1)) {
            job->cancel();
            if (log) t_log_detail = job->summary() + " client-disconnected";
            return false;
          }
        }
        if (log) t_log_detail = job->summary();
        const std::string body = dump(job->response());
        sink.write(body.data(), body.size());
        sink.done();
        return true;
      },
      [job](bool success) {
        if (!success) job->cancel();
      });
}

}  // namespace sparq::server
