"""Writes a deterministic multi-domain UTF-8 text corpus for the tokenizer bench: Debian copyright
files and license texts (English prose, names, URLs), this repository's sources (code), and the
tokenizer reference-case texts (CJK, emoji, accents, whitespace runs), repeated up to --mb MB.

    python bench/make_tokenizer_corpus.py OUT.txt [--mb 16]
"""
import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pieces():
    for p in sorted(Path("/usr/share/common-licenses").glob("*")):
        if p.is_file():
            yield p.read_bytes()
    for p in sorted(Path("/usr/share/doc").glob("*/copyright")):
        yield p.read_bytes()
    for ext in ("*.cpp", "*.h", "*.py", "*.md"):
        for p in sorted(REPO.glob(f"runtime/**/{ext}")) + sorted(REPO.glob(f"convert/**/{ext}")):
            yield p.read_bytes()
    cases = REPO.parent / "shared" / "data" / "tokenizer-cases"
    for f in sorted(cases.glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                yield json.loads(line)["text"].encode("utf-8")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--mb", type=float, default=16)
    a = ap.parse_args()
    base = []
    for b in pieces():
        text = b.decode("utf-8", errors="replace").encode("utf-8")
        base.append(text + b"\n\n")
    base = b"".join(base)
    target = int(a.mb * 1e6)
    out = bytearray()
    while len(out) < target:
        out += base
    cut = out.rfind(b"\n\n", 0, target)
    Path(a.out).write_bytes(bytes(out[: cut + 2 if cut > 0 else target]))


if __name__ == "__main__":
    main()
