#include "apps/interrupt_signal.h"

#include <csignal>

namespace sparq {

namespace {
volatile std::sig_atomic_t g_interrupted = 0;
volatile std::sig_atomic_t g_window_changed = 0;
struct sigaction g_previous_int, g_previous_winch;

void on_signal(int signo) {
  if (signo == SIGINT) g_interrupted = 1;
  else g_window_changed = 1;
}
}  // namespace

InterruptSignal::InterruptSignal() {
  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: reads return EINTR
  sigaction(SIGINT, &sa, &g_previous_int);
  sigaction(SIGWINCH, &sa, &g_previous_winch);
  g_interrupted = 0;
}

InterruptSignal::~InterruptSignal() {
  sigaction(SIGINT, &g_previous_int, nullptr);
  sigaction(SIGWINCH, &g_previous_winch, nullptr);
}

bool take_interrupt() {
  if (!g_interrupted) return false;
  g_interrupted = 0;
  return true;
}

bool take_window_change() {
  if (!g_window_changed) return false;
  g_window_changed = 0;
  return true;
}

}  // namespace sparq
