"""Shared helpers for the CLI tests: the sparq binary, fixtures, and safetensors writing."""
import json
import os
import struct
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"


def sparq_bin() -> str:
    return os.environ.get("SPARQ_BIN", str(REPO / "build" / "sparq"))


def run_sparq(*args, check=True, **kw):
    proc = subprocess.run([sparq_bin(), *map(str, args)], capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"sparq {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def fixture_dirs():
    return sorted(p.parent for p in FIXTURES.glob("*/config.json"))


def read_safetensors(path: Path):
    """Header dict and raw data bytes of a safetensors file."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    return header, raw[8 + n:]


def write_safetensors(path: Path, tensors):
    """tensors: list of (name, dtype, shape, bytes)."""
    header, data = {}, b""
    for name, dtype, shape, payload in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    text = json.dumps(header).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def split_tensors(path: Path):
    header, data = read_safetensors(path)
    out = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        out.append((name, info["dtype"], info["shape"], data[b:e]))
    return out


@pytest.fixture
def any_fixture():
    dirs = fixture_dirs()
    if not dirs:
        pytest.fail("no fixtures under tests/fixtures")
    return dirs[0]


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory):
    """The bundled demo model (models/demo) converted once per session: {"bf16": path, "w8a8": path}."""
    d = tmp_path_factory.mktemp("demo")
    out = {}
    for name in ("bf16", "w8a8"):
        out[name] = d / f"demo-{name}.sparq"
        run_sparq("convert", REPO / "models" / "demo" / name, "-o", out[name], "-q")
    return out
