#include "runtime/engine/engine_service.h"

#include <algorithm>

namespace sparq {

void EngineServiceOptions::validate() const {
  if (max_waiting < 0) fail("engine service: max_waiting must not be negative (got ", max_waiting, ")");
}

std::optional<GenerationEvent> RequestStream::next(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!ready_.wait_for(lock, timeout, [&] { return !events_.empty() || drained_; })) return std::nullopt;
  if (events_.empty()) return std::nullopt;  // the Finished event was read before
  GenerationEvent ev = std::move(events_.front());
  events_.pop_front();
  if (done_ && events_.empty()) drained_ = true;
  return ev;
}

bool RequestStream::finished() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

void RequestStream::push(const GenerationEvent& ev) {
  std::lock_guard<std::mutex> lock(mu_);
  if (done_) return;  // exactly one Finished event, nothing after it
  events_.push_back(ev);
  if (ev.kind == GenerationEvent::Kind::Finished) done_ = true;
  ready_.notify_all();
}

// Callers other than the stepping thread take mu_ through a Turn: the stepping thread sees that
// someone is about to lock and lets them in before its next step (std::mutex is not fair, and the
// stepping thread would otherwise take it again at once).
class EngineService::Turn {
 public:
  explicit Turn(const EngineService& s) : s_(s) {
    s_.callers_waiting_.fetch_add(1);
    lock_ = std::unique_lock<std::mutex>(s_.mu_);
    s_.callers_waiting_.fetch_sub(1);
    s_.turn_.notify_all();
  }
  std::unique_lock<std::mutex>& lock() { return lock_; }

 private:
  const EngineService& s_;
  std::unique_lock<std::mutex> lock_;
};

EngineService::EngineService(Engine& engine, EngineServiceOptions options)
    : engine_(engine), options_(options) {
  options_.validate();
  thread_ = std::thread([this] { loop(); });
}

EngineService::~EngineService() { stop(); }

std::shared_ptr<RequestStream> EngineService::submit(GenerationRequest request) {
  auto stream = std::make_shared<RequestStream>();
  Turn turn(*this);
  if (!accepting_.load() || stopping_) {
    ++counters_.refused;
    throw ServiceRefusal("the engine is shutting down and accepts no new requests");
  }
  engine_.validate(request);  // a wrong request is an Error even when the queue is full
  if (engine_.waiting() >= options_.max_waiting) {
    ++counters_.refused;
    throw ServiceRefusal("the request queue is full (" + std::to_string(options_.max_waiting) +
                         " requests waiting); try again later");
  }
  // Runs on the stepping thread inside Engine::step (mu_ held): no I/O, just the request's queue.
  request.on_event = [this, stream](const GenerationEvent& ev) { deliver(*stream, ev); };
  stream->id_ = engine_.submit(std::move(request));  // throws sparq::Error, changing nothing
  streams_.push_back(stream);
  ++counters_.submitted;
  work_.notify_one();
  return stream;
}

void EngineService::deliver(RequestStream& stream, const GenerationEvent& ev) {
  if (ev.kind == GenerationEvent::Kind::Finished && !stream.finished()) {
    ++counters_.finished;
    if (ev.reason == FinishReason::Error) ++counters_.failed;
  }
  stream.push(ev);
}

void EngineService::apply_cancellations() {
  for (const auto& s : streams_)
    if (s->cancel_requested_.load(std::memory_order_relaxed)) engine_.cancel(s->id_);
}

void EngineService::cancel_everything() {
  for (const auto& s : streams_) engine_.cancel(s->id_);
}

// Something other than a backend run failed inside a step (the engine handles those itself): the
// engine's state is not trusted any more, so every unfinished request ends with the error.
void EngineService::fail_everything(const std::string& why) {
  for (const auto& s : streams_) {
    GenerationEvent ev;
    ev.request = s->id_;
    ev.kind = GenerationEvent::Kind::Finished;
    ev.reason = FinishReason::Error;
    ev.error = why;
    deliver(*s, ev);
    engine_.cancel(s->id_);
  }
  try {
    engine_.step();  // finishes the cancelled requests inside the engine (their events are ignored)
  } catch (const std::exception&) {
  }
}

void EngineService::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    work_.wait(lock, [&] { return stopping_ || !engine_.idle(); });
    if (stopping_) {
      cancel_everything();
      try {
        engine_.step();
      } catch (const std::exception& e) {
        fail_everything(e.what());
      }
      streams_.clear();
      return;
    }
    apply_cancellations();
    bool progressed = true;
    try {
      progressed = engine_.step();
    } catch (const std::exception& e) {
      fail_everything(std::string("engine step failed: ") + e.what());
    }
    streams_.erase(std::remove_if(streams_.begin(), streams_.end(), [](const auto& s) { return s->finished(); }),
                   streams_.end());
    // Let waiting callers in; when nothing could run (every request waits for blocks), wait for a
    // change instead of spinning.
    turn_.wait(lock, [&] { return callers_waiting_.load() == 0 || stopping_; });
    if (!progressed && !engine_.idle()) work_.wait_for(lock, std::chrono::milliseconds(10));
  }
}

bool EngineService::drain(std::chrono::milliseconds timeout) {
  accepting_.store(false);
  // Polls through Turns: a condition-variable wait would need mu_ back from the stepping thread,
  // which holds it for whole steps.
  auto idle = [&] {
    Turn turn(*this);
    return engine_.idle() || stopping_;
  };
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (idle()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (idle()) return true;
  {
    Turn turn(*this);
    cancel_everything();
    work_.notify_one();
  }
  while (!idle()) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // one step at most
  return false;
}

void EngineService::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    accepting_.store(false);
    stopping_ = true;
    work_.notify_all();
    turn_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

ServiceStats EngineService::stats() const {
  Turn turn(*this);
  ServiceStats out = counters_;
  out.running = engine_.running();
  out.waiting = engine_.waiting();
  out.engine = engine_.totals();
  out.kv_blocks_total = engine_.kv_blocks().total_blocks();
  out.kv_blocks_used = out.kv_blocks_total - engine_.kv_blocks().free_blocks();
  return out;
}

}  // namespace sparq
