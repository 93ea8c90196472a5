#include "apps/line_editor.h"

#include <histedit.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <clocale>
#include <cstdio>
#include <cstring>
#include <cwchar>

#include "apps/interrupt_signal.h"
#include "runtime/core/error.h"

namespace sparq {

namespace {
constexpr wchar_t kKillLine = 0x15;  // Ctrl-U, bound to em-kill-line below

// libedit converts between wide characters and bytes with the C library's locale; a chat is
// UTF-8 whatever the environment says, so use a UTF-8 LC_CTYPE when the current one is not.
void use_utf8_ctype() {
  const char* current = std::setlocale(LC_CTYPE, "");
  const bool utf8 = current && (std::strstr(current, "UTF-8") || std::strstr(current, "utf8") || std::strstr(current, "UTF8"));
  if (!utf8) std::setlocale(LC_CTYPE, "C.UTF-8");
}
}  // namespace

LineEditor::LineEditor(const char* program_name) {
  use_utf8_ctype();
  el_ = el_init(program_name, stdin, stdout, stderr);
  history_ = history_init();
  if (!el_ || !history_) fail("cannot set up line editing on this terminal");
  HistEvent ev;
  history(history_, &ev, H_SETSIZE, 1000);
  history(history_, &ev, H_SETUNIQUE, 1);
  el_set(el_, EL_CLIENTDATA, this);
  el_set(el_, EL_EDITOR, "emacs");
  el_set(el_, EL_SIGNAL, 0);  // Ctrl-C and window size changes are handled in read_char
  el_set(el_, EL_HIST, history, history_);
  el_set(el_, EL_PROMPT, &LineEditor::prompt_text);
  el_set(el_, EL_GETCFN, &LineEditor::read_char);
  el_set(el_, EL_BIND, "^U", "em-kill-line", nullptr);
}

LineEditor::~LineEditor() {
  if (el_) el_end(el_);
  if (history_) history_end(history_);
}

char* LineEditor::prompt_text(editline* el) {
  void* self = nullptr;
  el_get(el, EL_CLIENTDATA, &self);
  return static_cast<LineEditor*>(self)->prompt_.data();
}

// One character from the terminal. Polls with a timeout so that a Ctrl-C arriving between the
// check and the read is still seen.
int LineEditor::read_char(editline* el, wchar_t* out) {
  void* client = nullptr;
  el_get(el, EL_CLIENTDATA, &client);
  auto* self = static_cast<LineEditor*>(client);
  std::mbstate_t state{};
  while (true) {
    if (take_window_change()) el_resize(el);
    if (take_interrupt()) {
      if (++self->interrupts_in_a_row_ >= 2) return 0;  // the end of input, as Ctrl-D
      *out = kKillLine;
      return 1;
    }
    pollfd p{STDIN_FILENO, POLLIN, 0};
    const int ready = poll(&p, 1, 100);
    if (ready < 0 && errno != EINTR) return -1;
    if (ready <= 0) continue;
    char byte = 0;
    const ssize_t n = ::read(STDIN_FILENO, &byte, 1);
    if (n == 0) {
      self->input_ended_ = true;
      return 0;
    }
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return -1;
    }
    wchar_t wc = 0;
    const size_t r = std::mbrtowc(&wc, &byte, 1, &state);
    if (r == static_cast<size_t>(-2)) continue;  // the middle of a multi-byte character
    if (r == static_cast<size_t>(-1)) {          // not UTF-8: drop the byte and start over
      state = std::mbstate_t{};
      continue;
    }
    self->interrupts_in_a_row_ = 0;
    *out = wc;
    return 1;
  }
}

std::optional<std::string> LineEditor::read(const std::string& prompt) {
  if (input_ended_) return std::nullopt;
  prompt_ = prompt;
  interrupts_in_a_row_ = 0;
  take_interrupt();  // a Ctrl-C that stopped the last answer is not meant for this line
  int count = 0;
  const char* line = el_gets(el_, &count);
  if (!line || count <= 0 || interrupts_in_a_row_ >= 2) return std::nullopt;
  std::string out(line, static_cast<size_t>(count));
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

void LineEditor::remember(const std::string& line) {
  if (line.find_first_not_of(" \t") == std::string::npos) return;
  HistEvent ev;
  history(history_, &ev, H_ENTER, line.c_str());
}

}  // namespace sparq
