// Ctrl-C as a flag instead of the end of the program: the interactive chat polls it to stop an
// answer or clear the line being typed. The handler is installed without SA_RESTART, so a blocking
// read returns EINTR and the reader can look at the flag.
#pragma once

namespace sparq {

// Installs the SIGINT (and SIGWINCH) handlers; restores the previous ones when it goes away.
class InterruptSignal {
 public:
  InterruptSignal();
  ~InterruptSignal();
  InterruptSignal(const InterruptSignal&) = delete;
  InterruptSignal& operator=(const InterruptSignal&) = delete;
};

// True once for each Ctrl-C since the last call (several presses in between count once).
bool take_interrupt();
// True once after the terminal changed size.
bool take_window_change();

}  // namespace sparq
