// The engine for many concurrent callers (a server's request threads, a chat UI): one thread owns
// the Engine and steps it; any thread may submit, cancel and read its own request's events.
//
//   EngineService service(engine, {.max_waiting = 64});
//   auto stream = service.submit(request);        // any thread; throws ServiceRefusal / sparq::Error
//   while (auto ev = stream->next()) { ... }       // this request's events only, in order
//   stream->cancel();                              // any thread, never blocks
//
// The stepping thread never calls user code: each event goes into its request's queue, so a slow
// reader stalls only itself. A step that fails finishes the requests it ran with an error event
// (FinishReason::Error) and the service goes on. submit() waits at most for the step in progress.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/core/error.h"
#include "runtime/engine/engine.h"

namespace sparq {

// submit() refused a valid request because the service is full or stopping: try again later
// (a server answers 429 / 503), unlike sparq::Error for a request that is wrong in itself.
struct ServiceRefusal : Error {
  using Error::Error;
};

struct EngineServiceOptions {
  // Requests that may wait for a place in the engine; more are refused with ServiceRefusal.
  int64_t max_waiting = 256;
  // Throws sparq::Error naming the bad field.
  void validate() const;
};

// A snapshot of the service's state, for /metrics and logs.
struct ServiceStats {
  int64_t running = 0, waiting = 0;
  int64_t submitted = 0, refused = 0, finished = 0, failed = 0;  // requests since start
  int64_t kv_blocks_total = 0, kv_blocks_used = 0;  // blocks held by sequences (cached-only ones are free)
  EngineTotals engine;
};

// The caller's end of one request: its events, in order, ending with exactly one Finished event.
class RequestStream {
 public:
  RequestId id() const { return id_; }
  // Waits for the next event; nullopt after the Finished event was read, or when `timeout` passes
  // first (then finished() tells which).
  std::optional<GenerationEvent> next(std::chrono::milliseconds timeout = std::chrono::hours(24));
  bool finished() const;
  // Asks the service to stop the request before its next step; safe from any thread, never blocks.
  void cancel() { cancel_requested_.store(true, std::memory_order_relaxed); }

 private:
  friend class EngineService;
  void push(const GenerationEvent& ev);

  RequestId id_ = 0;
  std::atomic<bool> cancel_requested_{false};
  mutable std::mutex mu_;
  std::condition_variable ready_;
  std::deque<GenerationEvent> events_;
  bool done_ = false;      // the Finished event was queued
  bool drained_ = false;   // and read
};

class EngineService {
 public:
  // Starts the stepping thread. The engine must outlive the service and must not be used directly
  // while the service runs.
  explicit EngineService(Engine& engine, EngineServiceOptions options = {});
  // stop(): cancels what is unfinished and joins the thread.
  ~EngineService();
  EngineService(const EngineService&) = delete;
  EngineService& operator=(const EngineService&) = delete;

  // Queues a request (its on_event, if any, is replaced by the stream). Throws sparq::Error when
  // the request is invalid or can never fit (Engine::submit's message), ServiceRefusal when
  // max_waiting requests already wait or the service is stopping.
  std::shared_ptr<RequestStream> submit(GenerationRequest request);

  // Stops accepting requests, then lets the running and waiting ones finish until `timeout`,
  // cancelling whatever is left; returns true when everything finished in time.
  bool drain(std::chrono::milliseconds timeout);
  // Cancels everything unfinished and stops the stepping thread (idempotent).
  void stop();

  ServiceStats stats() const;
  // True until drain() or stop() began.
  bool accepting() const { return accepting_.load(); }

 private:
  class Turn;
  void loop();
  // These run with mu_ held.
  void apply_cancellations();
  void cancel_everything();
  void fail_everything(const std::string& why);
  void deliver(RequestStream& stream, const GenerationEvent& ev);

  Engine& engine_;
  EngineServiceOptions options_;
  mutable std::mutex mu_;  // guards engine_, streams_ and the counters
  mutable std::atomic<int> callers_waiting_{0};  // threads about to take mu_ (see Turn)
  mutable std::condition_variable turn_;         // a caller got mu_
  std::condition_variable work_;   // a request arrived, or stop
  std::vector<std::shared_ptr<RequestStream>> streams_;  // unfinished requests
  std::atomic<bool> accepting_{true};
  bool stopping_ = false;
  ServiceStats counters_;
  std::thread thread_;
};

}  // namespace sparq
