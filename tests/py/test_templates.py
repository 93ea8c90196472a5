"""Chat templates: `sparq template` must render byte for byte what Python's jinja2 renders, set up
as transformers' apply_chat_template sets it up (ImmutableSandboxedEnvironment, trim_blocks,
lstrip_blocks, loopcontrols, its raise_exception / tojson / strftime_now). Covers the Gemma 2 and
Llama 3.1 templates of shared/data/tokenizers and the templates in tests/data/templates (see
SOURCES.md there), for several conversations, with and without the generation prompt.

Needs only pytest + jinja2 and the built binary (SPARQ_BIN)."""
import json
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

jinja2 = pytest.importorskip("jinja2")
from jinja2.ext import loopcontrols  # noqa: E402
from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: E402

from conftest import REPO, sparq_bin  # noqa: E402

TEMPLATES = REPO / "tests" / "data" / "templates"
SHARED = REPO.parent / "shared" / "data" / "tokenizers"
NOW = 1721995200  # 26 Jul 2024 12:00 UTC: the same calendar day in (almost) every time zone


# ---- the reference: jinja2 as transformers configures it --------------------------------------

class TemplateRaised(Exception):
    """The template called raise_exception(message)."""


class TemplateFailed(Exception):
    """Rendering failed otherwise (a TypeError, an undefined attribute, ...)."""


class _RaisedByTemplate(jinja2.exceptions.TemplateError):
    pass


def _raise_exception(message):
    raise _RaisedByTemplate(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt):
    return datetime.fromtimestamp(NOW).strftime(fmt)


def jinja_render(source, messages, add_generation_prompt, tokens, extra):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    kwargs = dict(tokens)
    kwargs.update(extra)
    kwargs.setdefault("tools", None)
    kwargs.setdefault("documents", None)
    try:
        return env.from_string(source).render(messages=messages, add_generation_prompt=add_generation_prompt, **kwargs)
    except _RaisedByTemplate as e:
        raise TemplateRaised(str(e)) from e
    except Exception as e:  # noqa: BLE001 - transformers lets these through too
        raise TemplateFailed(f"{type(e).__name__}: {e}") from e


# ---- conversations ----------------------------------------------------------------------------

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"},
                "days": {"type": "integer", "description": "Forecast days"},
            },
            "required": ["city"],
        },
    },
}]

CONVERSATIONS = {
    "system_user_assistant": {"messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello, how are you?"},
        {"role": "assistant", "content": "I'm doing great. How can I help you today?"},
        {"role": "user", "content": "Tell me a joke about \"quotes\" and {braces}."},
    ]},
    "no_system": {"messages": [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello! What can I do for you?"},
        {"role": "user", "content": "What is 2 + 2?"},
    ]},
    "single_user": {"messages": [{"role": "user", "content": "Write a haiku about the sea."}]},
    "whitespace_unicode": {"messages": [
        {"role": "system", "content": "  Système: réponds en français.\n"},
        {"role": "user", "content": "\n\n  日本語のテキスト 🍕👩‍👩‍👧 <|eot_id|> <start_of_turn>  \t"},
        {"role": "assistant", "content": "<think>hmm</think>  Réponse avec des espaces   "},
        {"role": "user", "content": "Encore\r\nune fois\\n"},
    ]},
    "tools": {"messages": [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call12345", "type": "function",
            "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius", "days": 1}}}]},
        {"role": "tool", "tool_call_id": "call12345", "name": "get_weather", "content": "{\"temp\": 21.5, \"sky\": \"clear\"}"},
        {"role": "assistant", "content": "It is 21.5 °C and clear in Paris."},
        {"role": "user", "content": "Thanks!"},
    ], "tools": TOOLS},
    "tools_string_arguments": {"messages": [
        {"role": "user", "content": "Weather in Oslo, please."},
        {"role": "assistant", "content": "", "tool_calls": [{
            "id": "call54321", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "call54321", "content": "-3"},
    ], "tools": TOOLS, "date_string": "01 Jan 2025"},
}

DEFAULT_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


def template_cases():
    cases = []
    for name in ("gemma2", "llama3_1"):
        cfg = json.loads((SHARED / name / "tokenizer_config.json").read_text())
        tokens = {k: cfg[k] for k in ("bos_token", "eos_token") if isinstance(cfg.get(k), str)}
        cases.append(pytest.param(name, cfg["chat_template"], tokens, SHARED / name, id=name))
    for path in sorted(TEMPLATES.glob("*.jinja")):
        cases.append(pytest.param(path.stem, path.read_text(encoding="utf-8"), DEFAULT_TOKENS, path, id=path.stem))
    return cases


def run_sparq_template(tmp_path, source_path, tokens, conv, add_generation_prompt):
    msg_file = tmp_path / "messages.json"
    msg_file.write_text(json.dumps(conv), encoding="utf-8")
    args = [sparq_bin(), "template", "--messages", str(msg_file), "--now", str(NOW)]
    if source_path.is_dir():
        args += ["--tokenizer", str(source_path)]
    else:
        tok_dir = tmp_path / "tok"
        tok_dir.mkdir(exist_ok=True)
        (tok_dir / "tokenizer_config.json").write_text(json.dumps(tokens), encoding="utf-8")
        args += ["--tokenizer", str(tok_dir), "--chat-template", str(source_path)]
    if not add_generation_prompt:
        args.append("--no-generation-prompt")
    return subprocess.run(args, capture_output=True)


def test_at_least_twelve_templates():
    assert len(template_cases()) >= 14


@pytest.mark.parametrize("name,source,tokens,source_path", template_cases())
@pytest.mark.parametrize("conv_name", list(CONVERSATIONS))
@pytest.mark.parametrize("gen", [True, False], ids=["gen", "nogen"])
def test_template_matches_jinja2(tmp_path, name, source, tokens, source_path, conv_name, gen):
    conv = CONVERSATIONS[conv_name]
    extra = {k: v for k, v in conv.items() if k != "messages"}
    expected = raised = failed = None
    try:
        expected = jinja_render(source, conv["messages"], gen, tokens, extra)
    except TemplateRaised as e:
        raised = str(e)
    except TemplateFailed as e:
        failed = str(e)
    proc = run_sparq_template(tmp_path, source_path, tokens, conv, gen)
    if raised is not None or failed is not None:
        assert proc.returncode == 1, f"jinja2 failed ({raised or failed}) but sparq printed:\n{proc.stdout.decode()}"
        if raised is not None:
            assert raised in proc.stderr.decode(), proc.stderr.decode()
        return
    assert proc.returncode == 0, proc.stderr.decode()
    got = proc.stdout.decode("utf-8")
    assert got == expected


def test_unsupported_construct_is_named(tmp_path):
    tpl = tmp_path / "bad.jinja"
    tpl.write_text("{% for m in messages %}{% include 'other.jinja' %}{% endfor %}")
    conv = {"messages": [{"role": "user", "content": "x"}]}
    proc = run_sparq_template(tmp_path, tpl, DEFAULT_TOKENS, conv, True)
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert "include" in err and "line 1" in err


def test_messages_as_plain_list_and_model_dir(tmp_path):
    msgs = tmp_path / "m.json"
    msgs.write_text(json.dumps([{"role": "user", "content": "Hi"}]))
    proc = subprocess.run([sparq_bin(), "template", "--tokenizer", str(SHARED / "gemma2"), "--messages", str(msgs)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
