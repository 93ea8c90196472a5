"""Writes expected.jsonl: every template here (and the Gemma 2 / Llama 3.1 templates of
shared/data/tokenizers) rendered by Python's jinja2 the way transformers renders chat templates,
for the conversations of tests/py/test_templates.py. The C++ unit test
tests/unit/test_chat_template_reference.cpp compares the interpreter against this file.

    .venv/bin/python tests/data/templates/make_expected.py
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "py"))
import test_templates as T  # noqa: E402

with open(HERE / "expected.jsonl", "w", encoding="utf-8") as out:
    for case in T.template_cases():
        name, source, tokens, path = case.values
        ref = f"shared:{name}" if path.is_dir() else path.name
        for conv_name, conv in T.CONVERSATIONS.items():
            extra = {k: v for k, v in conv.items() if k != "messages"}
            for gen in (True, False):
                rec = {"template": ref, "conversation": conv_name, "add_generation_prompt": gen,
                       "bos_token": tokens.get("bos_token", ""), "eos_token": tokens.get("eos_token", ""),
                       "variables": {**{k: v for k, v in tokens.items() if k not in ("bos_token", "eos_token")}, **extra},
                       "now": T.NOW, "messages": conv["messages"]}
                try:
                    rec["output"] = T.jinja_render(source, conv["messages"], gen, tokens, extra)
                except T.TemplateRaised as e:
                    rec["raises"] = str(e)
                except T.TemplateFailed as e:
                    rec["fails"] = str(e)
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
