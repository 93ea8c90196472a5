// The HTTP side of `sparq serve` (cpp-httplib): routes, API keys, body limits, the OpenAI error
// object for every failure, server-sent events, and one log line per request. It listens before
// the model is loaded, so /health can answer 503 while loading and 200 once ready; handlers only
// tokenize, submit to the engine service and relay its events (no inference on HTTP threads).
//
//   ApiServer server(options);
//   int port = server.bind();              // throws sparq::Error when the address is taken
//   std::thread t([&] { server.run(); });  // serves until stop()
//   server.set_ready(&context);            // after the model is loaded
//   server.set_draining();                 // SIGTERM: refuse new work, /health 503
//   server.stop(); t.join();
#pragma once
#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "apps/server/serving_context.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace sparq::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                        // 0: any free port (bind() returns it)
  std::string api_key;                    // empty: no key needed
  size_t max_request_bytes = 16u << 20;   // larger bodies are answered 413
  int http_threads = 64;                  // connections served at once (each stream holds one)
  bool log_requests = true;
};

class ApiServer {
 public:
  explicit ApiServer(ServerOptions options);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  int bind();
  void run();
  void stop();

  // The context must outlive the server's use of it (until stop() returned and run() ended).
  void set_ready(const ServingContext* context);
  void set_draining();
  // The start-up self-test's report (serve --selftest), shown by /health. A failed one keeps the
  // server answering 503 everywhere, so a load balancer never routes to it.
  void set_selftest(const nlohmann::json& report, bool passed);

 private:
  enum class State { Loading, Ready, Draining, SelftestFailed };
  void install_routes();
  bool authorized(const httplib::Request& req) const;
  const ServingContext* ready_context(httplib::Response& res) const;
  void completions(const httplib::Request& req, httplib::Response& res, bool chat);
  void tokenize(const httplib::Request& req, httplib::Response& res);
  void detokenize(const httplib::Request& req, httplib::Response& res);
  void tokenizer_info(const httplib::Request& req, httplib::Response& res);
  void models(const httplib::Request& req, httplib::Response& res);
  void health(httplib::Response& res) const;
  void metrics(httplib::Response& res) const;

  ServerOptions options_;
  std::unique_ptr<httplib::Server> http_;
  std::atomic<State> state_{State::Loading};
  std::atomic<bool> run_started_{false}, run_finished_{false}, stop_requested_{false};
  std::atomic<const ServingContext*> context_{nullptr};
  mutable std::mutex selftest_mutex_;
  nlohmann::ordered_json selftest_;  // the report; null without --selftest
};

}  // namespace sparq::server
