"""Regenerates cases.jsonl with the Python sentencepiece package (pip install sentencepiece)."""
import json
import re
from pathlib import Path

import sentencepiece as spm

here = Path(__file__).parent
sp = spm.SentencePieceProcessor(model_file=str(here / "tokenizer.model"))
controls = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if sp.is_control(i)]
split_re = re.compile("(" + "|".join(re.escape(c) for c in sorted(controls, key=len, reverse=True)) + ")")

TEXTS = {
    "empty": "",
    "hello": "Hello, world!",
    "spaces": "  two  spaces   three ",
    "newlines": "line one\nline two\n\n\tindented",
    "digits": "In 1969 there were 12345 of them.",
    "cjk_bytes": "日本語のテキスト 你好 안녕",
    "emoji_bytes": "I love 🍕 and 👨‍👩‍👧!",
    "control_inline": "Hello<eot>world<bos>x<eos>",
    "user_defined": "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
    "unseen_chars": "ǅ ȸ ʬ ΐ Ϟ",
}


def encode(text):
    ids = []
    for part in split_re.split(text):
        if not part:
            continue
        if part in controls:
            ids.append(sp.piece_to_id(part))
        else:
            ids.extend(sp.encode(part))
    return ids


def decode(ids, skip):
    out, run = "", []
    for i in ids:
        if sp.is_control(i) or sp.is_unknown(i):
            out += sp.decode(run)
            run = []
            if not skip:
                out += sp.id_to_piece(i)
        else:
            run.append(i)
    return out + sp.decode(run)


with open(here / "cases.jsonl", "w", encoding="utf-8") as f:
    for name, text in TEXTS.items():
        ids = encode(text)
        rec = {"name": name, "text": text, "ids": ids, "ids_with_special": [sp.bos_id()] + ids,
               "decoded": decode(ids, False), "decoded_skip_special": decode(ids, True)}
        f.write(json.dumps(rec, ensure_ascii=False) + "\n")
