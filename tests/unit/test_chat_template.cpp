// The chat-template interpreter against Python's jinja2: every case of
// tests/data/templates/expected.jsonl (made by make_expected.py with jinja2 configured as in
// transformers) must render byte for byte the same, raise the same raise_exception message, or fail
// where jinja2 fails. Plus focused checks of the Jinja constructs and of the error messages.
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/core/error.h"
#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/tokenizer_loader.h"
#include "tokenizer_test_util.h"

using sparq::ChatTemplate;
using sparq::ChatTemplateOptions;
using sparq::test::read_file;

namespace {

std::string template_source(const std::string& ref) {
  if (ref.rfind("shared:", 0) == 0) {
    auto cfg = nlohmann::json::parse(
        read_file(std::string(SPARQ_SHARED_DIR) + "/data/tokenizers/" + ref.substr(7) + "/tokenizer_config.json"));
    return sparq::chat_template_from_config(cfg);
  }
  return read_file(std::string(SPARQ_SOURCE_DIR) + "/tests/data/templates/" + ref);
}

std::string render(const std::string& src, const nlohmann::json& messages, bool gen = true,
                   nlohmann::ordered_json vars = nlohmann::ordered_json::object()) {
  ChatTemplateOptions o;
  o.add_generation_prompt = gen;
  o.bos_token = "<s>";
  o.eos_token = "</s>";
  o.variables = std::move(vars);
  o.now = 1721995200;
  return ChatTemplate(src).render(messages, o);
}

std::string error_of(const std::string& src, const nlohmann::json& messages = nlohmann::json::array()) {
  try {
    render(src, messages);
  } catch (const sparq::Error& e) {
    return e.what();
  }
  return "(no error)";
}

const nlohmann::json kMsgs = nlohmann::json::parse(R"([
  {"role": "system", "content": "S"}, {"role": "user", "content": "U1"},
  {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"}])");

}  // namespace

TEST_CASE("chat template: renders like jinja2 for every reference case", "[chat_template]") {
  std::ifstream in(std::string(SPARQ_SOURCE_DIR) + "/tests/data/templates/expected.jsonl");
  REQUIRE(in.good());
  std::map<std::string, std::unique_ptr<ChatTemplate>> compiled;
  std::string line;
  int n = 0, templates_seen = 0;
  while (std::getline(in, line)) {
    auto c = nlohmann::ordered_json::parse(line);
    const std::string ref = c["template"];
    auto& t = compiled[ref];
    if (!t) {
      t = std::make_unique<ChatTemplate>(template_source(ref));
      ++templates_seen;
    }
    ChatTemplateOptions o;
    o.add_generation_prompt = c["add_generation_prompt"];
    o.bos_token = c["bos_token"];
    o.eos_token = c["eos_token"];
    o.variables = c["variables"];
    o.now = c["now"].get<std::time_t>();
    INFO(ref << " / " << c["conversation"].get<std::string>() << " / gen=" << o.add_generation_prompt);
    if (c.contains("output")) {
      std::string got;
      REQUIRE_NOTHROW(got = t->render(c["messages"], o));
      CHECK(got == c["output"].get<std::string>());
    } else if (c.contains("raises")) {
      try {
        t->render(c["messages"], o);
        FAIL("expected raise_exception(" << c["raises"] << ")");
      } catch (const sparq::Error& e) {
        CHECK_THAT(e.what(), Catch::Contains(c["raises"].get<std::string>()));
      }
    } else {
      INFO("jinja2 failed with " << c["fails"]);
      CHECK_THROWS_AS(t->render(c["messages"], o), sparq::Error);
    }
    ++n;
  }
  CHECK(n >= 200);
  CHECK(templates_seen >= 14);
}

TEST_CASE("chat template: whitespace control as transformers sets it", "[chat_template]") {
  // trim_blocks: the newline after a block tag goes; lstrip_blocks: indentation before it goes.
  CHECK(render("{% if true %}\n  x\n{% endif %}\ny", kMsgs) == "  x\ny");
  CHECK(render("  {% if true %}a{% endif %}  \nb", kMsgs) == "a  \nb");
  CHECK(render("a  {{- 'b' -}}  \n c", kMsgs) == "abc");
  CHECK(render("a\n{%+ if true %}b{% endif %}", kMsgs) == "a\nb");
  CHECK(render("{# comment #}\nx", kMsgs) == "x");
  CHECK(render("a\n", kMsgs) == "a");  // a single trailing newline is dropped
  CHECK(render("{% raw %}{{ not parsed }}{% endraw %}", kMsgs) == "{{ not parsed }}");
}

TEST_CASE("chat template: loops, namespace, set, macros", "[chat_template]") {
  CHECK(render("{% for m in messages %}{{ loop.index }}{{ m.role[0] }}{% if not loop.last %},{% endif %}{% endfor %}",
               kMsgs) == "1s,2u,3a,4u");
  CHECK(render("{% for m in messages if m.role == 'user' %}{{ loop.index0 }}{{ m.content }}{% endfor %}", kMsgs) ==
        "0U11U2");
  CHECK(render("{% for m in messages %}{% if loop.index > 2 %}{% break %}{% endif %}{{ m.content }}{% endfor %}",
               kMsgs) == "SU1");
  CHECK(render("{% for x in [] %}a{% else %}empty{% endfor %}", kMsgs) == "empty");
  CHECK(render("{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}",
               kMsgs) == "4");
  // A plain set inside a loop does not leak out of it.
  CHECK(render("{% set n = 0 %}{% for m in messages %}{% set n = n + 1 %}{% endfor %}{{ n }}", kMsgs) == "0");
  CHECK(render("{% macro tag(x, y='!') %}<{{ x }}{{ y }}>{% endmacro %}{{ tag('a') }}{{ tag('b', y='?') }}", kMsgs) ==
        "<a!><b?>");
  CHECK(render("{% set x %}cap{{ 1 + 1 }}{% endset %}{{ x | upper }}", kMsgs) == "CAP2");
  CHECK(render("{% for k, v in {'a': 1, 'b': 2} | items %}{{ k }}={{ v }};{% endfor %}", kMsgs) == "a=1;b=2;");
  CHECK(render("{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join('+') }}",
               kMsgs) == "U1+U2");
  CHECK(render("{{ messages[1:] | length }} {{ messages[-1].content }} {{ 'abc'[::-1] }}", kMsgs) == "3 U2 cba");
}

TEST_CASE("chat template: filters, tests, methods and values", "[chat_template]") {
  const auto e = nlohmann::json::array();
  CHECK(render("{{ '  x  ' | trim }}|{{ ' y '.strip() }}|{{ 'a,b'.split(',') }}", e) == "x|y|['a', 'b']");
  CHECK(render("{{ {'b': 1, 'a': [1, 2.5, none, true, 'é']} | tojson }}", e) == "{\"b\": 1, \"a\": [1, 2.5, null, true, \"é\"]}");
  CHECK(render("{{ {'a': {'b': 1}} | tojson(indent=2) }}", e) == "{\n  \"a\": {\n    \"b\": 1\n  }\n}");
  CHECK(render("{{ x is defined }} {{ none is none }} {{ 'a' is string }} {{ 3 is number }} {{ {} is mapping }}", e) ==
        "False True True True True");
  CHECK(render("{{ 'Hello' ~ 1 ~ none }} {{ 7 // 2 }} {{ 7 / 2 }} {{ -7 % 3 }} {{ 2 ** 10 }}", e) ==
        "Hello1None 3 3.5 2 1024");
  CHECK(render("{{ 'a' if false }}|{{ undefined_thing }}|{{ [1, 2] }}|{{ 1.0 }}|{{ 'x' * 3 }}", e) == "||[1, 2]|1.0|xxx");
  CHECK(render("{{ 'hello world'.title() }} {{ 'ABC'.lower() }} {{ 'abc'.startswith('ab') }}", e) ==
        "Hello World abc True");
  CHECK(render("{{ 'a\nb' | indent(2) }}|{{ 'x' | indent(2, first=true) }}", e) == "a\n  b|  x");
  CHECK(render("{{ strftime_now('%Y-%m-%d') }}", e) == "2024-07-26");
  CHECK(render("{{ '日本語' | length }} {{ '日本語'[1] }}", e) == "3 本");
}

TEST_CASE("chat template: errors name the construct and the line", "[chat_template]") {
  CHECK_THAT(error_of("a\n{% include 'x.jinja' %}"), Catch::Contains("include") && Catch::Contains("line 2"));
  CHECK_THAT(error_of("{% extends 'base' %}"), Catch::Contains("extends"));
  CHECK_THAT(error_of("{% for x in y recursive %}{% endfor %}"), Catch::Contains("recursive"));
  CHECK_THAT(error_of("{% if true %}never closed"), Catch::Contains("endif"));
  CHECK_THAT(error_of("{{ 'unterminated }}"), Catch::Contains("line 1"));
  CHECK_THAT(error_of("{{ raise_exception('custom failure') }}"), Catch::Contains("custom failure"));
  CHECK_THAT(error_of("{{ messages.foo.bar }}", kMsgs), Catch::Contains("undefined"));
  CHECK_THAT(error_of("{{ 1 + 'a' }}"), Catch::Contains("unsupported operand"));
  CHECK_THAT(error_of("{{ x | no_such_filter }}"), Catch::Contains("no_such_filter"));
  CHECK_THAT(error_of("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"), Catch::Contains("recursed too deeply"));
  CHECK_THAT(error_of("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}"),
             Catch::Contains("nested too deeply"));
  CHECK_THAT(error_of(std::string(300, '{') + "% if true %}"), Catch::Contains("line 1"));
  // Numbers past int64 are errors, never an uncaught exception or an overflowing conversion (fuzz).
  CHECK_THAT(error_of("{{ messages.99999999999999999999999 }}", kMsgs), Catch::Contains("out of range"));
  CHECK_THAT(error_of("{{ 1e300 | int }}"), Catch::Contains("out of range"));
  CHECK_THAT(error_of("{{ '1e300' | int }}"), Catch::Contains("out of range"));
  ChatTemplateOptions small;
  small.max_loop_iterations = 1000;
  CHECK_THROWS_WITH(
      ChatTemplate("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}").render(kMsgs, small),
      Catch::Contains("loop iterations"));
}

TEST_CASE("chat template: the real model templates with their tokens", "[chat_template]") {
  for (const char* name : {"gemma2", "llama3_1"}) {
    auto lt_cfg = nlohmann::json::parse(
        read_file(std::string(SPARQ_SHARED_DIR) + "/data/tokenizers/" + name + "/tokenizer_config.json"));
    ChatTemplate t(sparq::chat_template_from_config(lt_cfg));
    ChatTemplateOptions o;
    o.bos_token = lt_cfg["bos_token"];
    o.eos_token = lt_cfg["eos_token"];
    o.now = 1721995200;
    auto msgs = nlohmann::json::parse(R"([{"role": "user", "content": "Hi"}])");
    const std::string out = t.render(msgs, o);
    if (std::string(name) == "gemma2")
      CHECK(out == "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
    else
      CHECK(out ==
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
            "Today Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  }
}

TEST_CASE("template options: the tokenizer's special tokens, then the caller's variables", "[chat_template]") {
  const nlohmann::json config = {{"bos_token", "<s>"}, {"eos_token", {{"content", "</s>"}}}};
  const nlohmann::json special = {{"bos_token", "<not this>"}, {"unk_token", "<unk>"}};
  ChatTemplateOptions o = sparq::chat_template_options(config, special, true);
  CHECK(o.bos_token == "<s>");
  CHECK(o.eos_token == "</s>");
  CHECK(o.variables.at("unk_token") == "<unk>");
  CHECK(o.add_generation_prompt);

  nlohmann::ordered_json vars = {{"bos_token", "<B>"}, {"add_generation_prompt", false}, {"tools", nlohmann::ordered_json::array()}};
  o = sparq::chat_template_options(config, special, true, vars);
  CHECK(o.bos_token == "<B>");
  CHECK_FALSE(o.add_generation_prompt);
  CHECK(o.variables.contains("tools"));
  CHECK_FALSE(o.variables.contains("add_generation_prompt"));
  vars["add_generation_prompt"] = true;  // cannot turn on what the caller turned off
  CHECK_FALSE(sparq::chat_template_options(config, special, false, vars).add_generation_prompt);
}

// 64-bit integers: an overflow is a template error that says so (it was undefined behaviour; the
// fuzzer found `44 * 4444446444444444443`), not a wrapped number.
TEST_CASE("chat template: integer overflow is an error, not a wrapped value", "[chat_template]") {
  CHECK(render("{{ 4611686018427387903 + 4611686018427387904 }}", kMsgs) == "9223372036854775807");
  for (const char* src : {"{{ 9223372036854775807 + 1 }}", "{{ -9223372036854775807 - 2 }}",
                          "{{ 44 * 4444446444444444443 }}", "{{ 2 ** 63 }}", "{{ (-9223372036854775807 - 1) // -1 }}",
                          "{{ -(-9223372036854775807 - 1) }}"}) {
    INFO(src);
    CHECK(error_of(src).find("integer overflow") != std::string::npos);
  }
  CHECK(render("{{ 2 ** 62 }}", kMsgs) == "4611686018427387904");
}

// Values are shared by reference (as in Python); a namespace stored inside itself would be a
// reference cycle that is never freed (the fuzzer's leak report), so it is refused by name.
TEST_CASE("chat template: a namespace cannot be stored inside itself", "[chat_template]") {
  CHECK(error_of("{% set ns = namespace() %}{% set ns.me = ns %}").find("cannot store namespace 'ns' inside itself") !=
        std::string::npos);
  CHECK(error_of("{% set ns = namespace() %}{% set ns.x = [1, {'a': [ns]}] %}").find("inside itself") != std::string::npos);
  // Sharing without a cycle stays allowed.
  CHECK(render("{% set a = namespace(v=1) %}{% set b = namespace() %}{% set b.x = [a, a] %}{% set b.y = a %}"
               "{{ b.x[1].v }}{{ b.y.v }}",
               kMsgs) == "11");
}

// Strings have a ceiling (64 MiB): a template that multiplies or doubles a string past it fails
// with an error instead of exhausting memory (the fuzzer's `'.' * 46444 * 4 * 4496`: 835 MB).
TEST_CASE("chat template: strings and output cannot grow without bound", "[chat_template]") {
  CHECK(render("{{ ('ab' * 3) * 2 }}", kMsgs) == "abababababab");
  CHECK(error_of("{{ ('.' * 46444) * 4 * 4496 }}").find("repetition result too large") != std::string::npos);
  CHECK(error_of("{{ ([1, 2] * 1000) * 1000 }}").find("repetition result too large") != std::string::npos);
  CHECK(error_of("{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
                 "{% endfor %}")
            .find("concatenation result too large") != std::string::npos);
  CHECK(error_of("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}").find("would grow over 64 MiB") !=
        std::string::npos);
}
