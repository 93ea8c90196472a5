// Line input for the interactive chat: editing and history (libedit), UTF-8 input, and Ctrl-C
// that clears the line being typed (a second Ctrl-C in a row ends the input, like Ctrl-D).
// Needs an InterruptSignal to be installed for Ctrl-C to reach it.
#pragma once
#include <optional>
#include <string>

struct editline;
struct history;

namespace sparq {

class LineEditor {
 public:
  explicit LineEditor(const char* program_name);
  ~LineEditor();
  LineEditor(const LineEditor&) = delete;
  LineEditor& operator=(const LineEditor&) = delete;

  // One line without its newline; nullopt at Ctrl-D on an empty line, a second Ctrl-C in a row,
  // or the end of the terminal's input.
  std::optional<std::string> read(const std::string& prompt);
  void remember(const std::string& line);  // adds the line to the history (Up / Down)

 private:
  static int read_char(editline* el, wchar_t* out);
  static char* prompt_text(editline* el);

  editline* el_ = nullptr;
  history* history_ = nullptr;
  std::string prompt_;
  int interrupts_in_a_row_ = 0;
  bool input_ended_ = false;
};

}  // namespace sparq
