// Stop strings over streamed text: every way of splitting the text across pushes gives the same result.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "runtime/engine/stop_strings.h"

using sparq::StopStringMatcher;

namespace {

struct Outcome {
  std::string emitted;
  bool stopped;
};

// Pushes the pieces, then flushes.
Outcome run(const std::vector<std::string>& stops, const std::vector<std::string>& pieces) {
  StopStringMatcher m(stops);
  Outcome o{"", false};
  for (const auto& p : pieces) o.emitted += m.push(p);
  o.stopped = m.stopped();
  o.emitted += m.flush();
  return o;
}

// Every split of text into two and three pieces, plus one byte at a time.
std::vector<std::vector<std::string>> splits(const std::string& text) {
  std::vector<std::vector<std::string>> out;
  for (size_t i = 0; i <= text.size(); ++i) {
    out.push_back({text.substr(0, i), text.substr(i)});
    for (size_t j = i; j <= text.size(); ++j) out.push_back({text.substr(0, i), text.substr(i, j - i), text.substr(j)});
  }
  std::vector<std::string> bytes;
  for (char c : text) bytes.emplace_back(1, c);
  out.push_back(bytes);
  return out;
}

void check_all_splits(const std::vector<std::string>& stops, const std::string& text, const std::string& expected,
                      bool expect_stop) {
  for (const auto& pieces : splits(text)) {
    const Outcome o = run(stops, pieces);
    INFO("text \"" << text << "\" split into " << pieces.size() << " pieces, first \"" << pieces[0] << "\"");
    CHECK(o.emitted == expected);
    CHECK(o.stopped == expect_stop);
  }
}

}  // namespace

TEST_CASE("stop strings: a match split across pushes anywhere", "[sampling]") {
  check_all_splits({"STOP"}, "hello STOP world", "hello ", true);
  check_all_splits({"\n\nUser:"}, "answer\n\nUser: more", "answer", true);
}

TEST_CASE("stop strings: no match emits everything", "[sampling]") {
  check_all_splits({"STOP"}, "hello STO world ST", "hello STO world ST", false);
}

TEST_CASE("stop strings: the earliest of several stop strings wins", "[sampling]") {
  check_all_splits({"world", "lo"}, "hello world", "hel", true);
  check_all_splits({"xyz", "abc"}, "123abc456xyz", "123", true);
}

TEST_CASE("stop strings: overlapping prefixes", "[sampling]") {
  check_all_splits({"aab"}, "aaab", "a", true);
  check_all_splits({"abab"}, "abababx", "", true);
  check_all_splits({"abc", "abd"}, "xxabdyy", "xx", true);
  check_all_splits({"abc", "bcd"}, "abcd", "", true);
  check_all_splits({"ab", "abcd"}, "zabcd", "z", true);
  check_all_splits({"aab"}, "aaaa", "aaaa", false);
}

TEST_CASE("stop strings: text before the stop is emitted as early as possible, nothing after", "[sampling]") {
  StopStringMatcher m({"<end>"});
  CHECK(m.push("abc<") == "abc");
  CHECK(m.push("e") == "");
  CHECK(m.push("x") == "<ex");
  CHECK(m.push("y <en") == "y ");
  CHECK_FALSE(m.stopped());
  CHECK(m.push("d> tail") == "");
  CHECK(m.stopped());
  CHECK(m.matched_index() == 0);
  CHECK(m.push("more <end>") == "");
  CHECK(m.flush() == "");
}

TEST_CASE("stop strings: UTF-8 multi-byte stop strings", "[sampling]") {
  check_all_splits({"終わり"}, "答えです。終わり、以上", "答えです。", true);
  check_all_splits({"🛑"}, "go 🚦 🛑 no", "go 🚦 ", true);
  check_all_splits({"é"}, "caf\xC3\xA9", "caf", true);
  // A shared first byte (U+00E8 and U+00E9 both start with 0xC3) holds back only while it can match.
  check_all_splits({"é"}, "cafè!", "cafè!", false);
}

TEST_CASE("stop strings: no stop strings pass text through", "[sampling]") {
  StopStringMatcher m({});
  CHECK(m.push("anything") == "anything");
  CHECK(m.flush() == "");
  CHECK_FALSE(m.stopped());
}

TEST_CASE("stop strings: empty or invalid stop strings are refused", "[sampling]") {
  CHECK_THROWS_WITH(StopStringMatcher({"ok", ""}), Catch::Contains("stop string 2 is empty"));
  CHECK_THROWS_WITH(StopStringMatcher({"\xC3"}), Catch::Contains("UTF-8"));
}
