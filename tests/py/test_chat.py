"""`sparq chat` driven through a pseudo-terminal (prompts, line editing, Ctrl-C) and as a script
(stdin not a terminal). The tiny fixture models answer with random tokens, so the checks are on
structure: the prompts the chat renders (logged with --log-prompt) against `sparq template`, exit
codes, staying alive after Ctrl-C, and greedy answers against `sparq generate`."""
import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

from conftest import FIXTURES, run_sparq, sparq_bin

TIMEOUT = 120  # seconds for one answer or prompt on a busy machine


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    out = {}
    d = tmp_path_factory.mktemp("chat-models")
    for name in ("gemma2", "llama"):
        path = d / f"{name}.sparq"
        run_sparq("convert", FIXTURES / f"{name}-w8a8-int8", "-o", path, "-q")
        out[name] = path
    return out


def bos_text(name):
    cfg = json.loads((FIXTURES / f"{name}-w8a8-int8" / "tokenizer_config.json").read_text())
    bos = cfg["bos_token"]
    return bos["content"] if isinstance(bos, dict) else bos


def read_log(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class Terminal:
    """sparq chat on a pseudo-terminal: stdout and stderr both arrive on the master side."""

    def __init__(self, args):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: becomes the chat
            env = dict(os.environ, TERM="xterm")
            os.execve(sparq_bin(), [sparq_bin(), "chat", *map(str, args)], env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
        self.out = b""
        self.mark = 0  # expect() looks at output after this offset
        self.status = None

    def _read(self, wait):
        ready, _, _ = select.select([self.fd], [], [], wait)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # the child closed the terminal
            return False
        self.out += data
        return bool(data)

    def expect(self, text, timeout=TIMEOUT):
        """Waits until text (str) appears after the last match; returns the output up to it."""
        needle = text.encode()
        end = time.time() + timeout
        while True:
            at = self.out.find(needle, self.mark)
            if at >= 0:
                seen = self.out[self.mark:at + len(needle)]
                self.mark = at + len(needle)
                return seen.decode("utf-8", errors="replace")
            if time.time() > end or not self._read(0.05):
                tail = self.out[self.mark:].decode("utf-8", errors="replace")
                raise AssertionError(f"{text!r} did not appear; output since the last match:\n{tail}")

    def send(self, data):
        os.write(self.fd, data.encode() if isinstance(data, str) else data)

    def wait(self, timeout=TIMEOUT):
        end = time.time() + timeout
        while time.time() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
            self._read(0.05)
        raise AssertionError("sparq chat did not exit; output:\n" + self.out.decode("utf-8", errors="replace"))

    def close(self):
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except ProcessLookupError:
                pass
        os.close(self.fd)


@pytest.fixture
def terminal():
    opened = []

    def start(*args):
        t = Terminal(args)
        opened.append(t)
        return t

    yield start
    for t in opened:
        t.close()


def answer(term, message):
    """Sends a message at the prompt; returns what was shown up to the speed line."""
    term.send(message + "\r")
    shown = term.expect("tok/s") + term.expect("]")
    term.expect("> ")
    time.sleep(0.2)  # let the line editor take the terminal: input typed before that is discarded
    return shown


def rendered_by_template(model, messages, tmp_path):
    f = tmp_path / "messages.json"
    f.write_text(json.dumps(messages), encoding="utf-8")
    return run_sparq("template", "-m", model, "--messages", f).stdout


@pytest.mark.parametrize("name", ["gemma2", "llama"])
def test_multi_turn_prompts_are_the_template_rendering(models, terminal, tmp_path, name):
    log = tmp_path / "prompts.jsonl"
    term = terminal(models[name], "--temp", "0", "-n", "6", "--log-prompt", log)
    term.expect("> ")
    answer(term, "Hello there")
    second = answer(term, "And a second question")
    answer(term, "Thanks, ünïcode 日本語 too")
    term.send("/quit\r")
    assert term.wait() == 0

    # Only what is new is prefilled: the second turn reuses the first turn's prompt.
    reused = int(second.split(" reused")[0].rsplit(", ", 1)[1])
    assert reused > 0

    entries = read_log(log)
    assert [len(e["messages"]) for e in entries] == [1, 3, 5]
    assert [m["role"] for m in entries[2]["messages"]] == ["user", "assistant", "user", "assistant", "user"]
    assert entries[2]["messages"][-1]["content"] == "Thanks, ünïcode 日本語 too"
    # Earlier turns are kept as they were said.
    assert entries[2]["messages"][:3] == entries[1]["messages"]
    for e in entries:
        assert e["prompt"] == rendered_by_template(models[name], e["messages"], tmp_path)


def test_system_and_reset(models, terminal, tmp_path):
    log = tmp_path / "prompts.jsonl"
    term = terminal(models["llama"], "--temp", "0", "-n", "4", "--log-prompt", log)
    term.expect("> ")
    term.send("/system You answer in one word.\r")
    term.expect("(system message set)")
    answer(term, "Hi")
    term.send("/reset\r")
    term.expect("(conversation cleared)")
    answer(term, "Again")
    term.send("/system\r")
    term.expect("(system message removed)")
    answer(term, "Once more")
    term.send("/help\r")
    term.expect("/reset")
    term.send("/quit\r")
    assert term.wait() == 0

    entries = read_log(log)
    system = {"role": "system", "content": "You answer in one word."}
    assert entries[0]["messages"] == [system, {"role": "user", "content": "Hi"}]
    assert entries[1]["messages"] == [system, {"role": "user", "content": "Again"}]  # /reset keeps the system message
    assert [m["role"] for m in entries[2]["messages"]] == ["user", "assistant", "user"]
    for e in entries:
        assert e["prompt"] == rendered_by_template(models["llama"], e["messages"], tmp_path)


def test_system_refused_by_the_template_is_a_message(models, terminal):
    term = terminal(models["gemma2"], "--temp", "0", "-n", "4")
    term.expect("> ")
    term.send("/system Be brief.\r")
    term.expect("does not accept a system message")
    term.expect("> ")  # typing ahead of the prompt is discarded when the line editor takes the terminal
    answer(term, "Still here?")
    time.sleep(0.5)
    term.send("\x04")  # Ctrl-D on an empty line
    assert term.wait() == 0


def test_system_flag_refused_by_the_template_is_an_error(models):
    proc = run_sparq("chat", models["gemma2"], "--system", "Be brief.", check=False, input="hi\n")
    assert proc.returncode == 1
    assert "does not accept a system message" in proc.stderr


def test_ctrl_c_stops_the_answer_and_the_chat_goes_on(models, terminal, tmp_path):
    log = tmp_path / "prompts.jsonl"
    term = terminal(models["gemma2"], "--temp", "0", "-n", "400", "--ignore-eos", "--log-prompt", log)
    term.expect("> ")
    # Let the line editor take the terminal first: a Ctrl-C while typed-ahead text is still queued
    # makes the terminal discard that text (as it should), and this test wants a running answer.
    time.sleep(0.5)
    term.send("Tell me a very long story\r")
    term.expect("story\r\n")  # the line is submitted; the answer streams from here
    shown = len(term.out)
    while len(term.out) == shown:  # stop it as soon as it starts
        term._read(0.01)
    term.send("\x03")
    stopped = term.expect("]")
    term.expect("> ")
    assert "; stopped]" in stopped or "(answer stopped before any text" in stopped
    answer(term, "Next")
    term.send("/quit\r")
    assert term.wait() == 0

    entries = read_log(log)
    assert len(entries) == 2
    # The partial answer stays in the conversation (or, when nothing was shown yet, the question goes).
    assert [m["role"] for m in entries[1]["messages"]] in (["user", "assistant", "user"], ["user"])


def test_ctrl_c_at_the_prompt_clears_the_line_and_twice_quits(models, terminal, tmp_path):
    log = tmp_path / "prompts.jsonl"
    term = terminal(models["gemma2"], "--temp", "0", "-n", "4", "--log-prompt", log)
    term.expect("> ")
    term.send("this text is thrown away")
    time.sleep(0.3)
    term.send("\x03")
    time.sleep(0.3)
    answer(term, "kept")
    term.send("\x03")
    time.sleep(0.3)
    term.send("\x03")
    assert term.wait() == 0
    assert [e["messages"][-1]["content"] for e in read_log(log)] == ["kept"]


def run_script(model, lines, *args):
    return subprocess.run([sparq_bin(), "chat", str(model), *map(str, args)], input="".join(l + "\n" for l in lines),
                          capture_output=True, text=True, timeout=600)


def test_script_mode_answers_one_line_each(models, tmp_path):
    log = tmp_path / "prompts.jsonl"
    proc = run_script(models["llama"], ["First message", "", "Second message", "/reset", "Third message"],
                      "--temp", "0", "-n", "5", "--ignore-eos", "--log-prompt", log)
    assert proc.returncode == 0, proc.stderr
    entries = read_log(log)
    assert [len(e["messages"]) for e in entries] == [1, 3, 1]
    first_answer = entries[1]["messages"][1]["content"]
    second_answer_and_rest = proc.stdout[len(first_answer) + 1:]
    assert proc.stdout.startswith(first_answer + "\n")
    assert proc.stdout.endswith("\n") and second_answer_and_rest.count("\n") >= 2
    assert "> " not in proc.stdout and "\x1b[" not in proc.stdout + proc.stderr  # no prompts, no colours
    assert proc.stderr.count("tok/s") == 3


@pytest.mark.parametrize("name", ["gemma2", "llama"])
def test_greedy_answer_equals_generate_on_the_rendered_prompt(models, tmp_path, name):
    log = tmp_path / "prompts.jsonl"
    chat = run_script(models[name], ["Write something"], "--temp", "0", "-n", "24", "--ignore-eos", "--log-prompt", log)
    assert chat.returncode == 0, chat.stderr
    prompt = read_log(log)[0]["prompt"]
    bos = bos_text(name)
    assert prompt.startswith(bos)
    # generate adds the BOS itself: give it the rendered prompt without it.
    gen = run_sparq("generate", "-m", models[name], "-p", prompt[len(bos):], "-n", "24", "--temp", "0", "--ignore-eos")
    assert chat.stdout == gen.stdout + "\n"


def test_context_overflow_in_script_mode_drops_the_oldest_turns(models, tmp_path):
    log = tmp_path / "prompts.jsonl"
    proc = run_script(models["gemma2"], ["Hello there"] * 5, "--temp", "0", "-n", "8", "--ignore-eos", "--ctx", "72",
                      "--log-prompt", log)
    assert proc.returncode == 0, proc.stderr
    assert "dropped the oldest" in proc.stderr
    counts = [len(e["messages"]) for e in read_log(log)]
    assert len(counts) == 5 and counts[:2] == [1, 3] and max(counts) < 9

    # A message that cannot fit even alone is refused, with an empty answer line; the rest goes on.
    proc = run_script(models["gemma2"], ["word " * 200, "short"], "--temp", "0", "-n", "8", "--ctx", "72")
    assert proc.returncode == 1
    assert "more than the context of 72" in proc.stderr
    assert proc.stdout.startswith("\n") and proc.stderr.count("tok/s") == 1


def test_context_overflow_on_a_terminal_asks(models, terminal, tmp_path):
    log = tmp_path / "prompts.jsonl"
    term = terminal(models["gemma2"], "--temp", "0", "-n", "8", "--ignore-eos", "--ctx", "72", "--log-prompt", log)
    term.expect("> ")
    answer(term, "Hello there")
    answer(term, "Hello there")
    term.send("Hello there\r")
    term.expect("exceeds the context of 72")
    term.expect("[c]ancel this message? ")
    term.send("c\r")
    term.expect("(message cancelled)")
    term.expect("> ")
    term.send("Hello there\r")
    term.expect("[c]ancel this message? ")
    term.send("d\r")
    term.expect("(dropped the oldest turn)")
    term.expect("tok/s")
    term.expect("> ")
    term.send("Hello there\r")
    term.expect("[c]ancel this message? ")
    term.send("r\r")
    term.expect("(conversation cleared)")
    term.expect("tok/s")
    term.expect("> ")
    term.send("/quit\r")
    assert term.wait() == 0
    counts = [len(e["messages"]) for e in read_log(log)]
    assert counts[:2] == [1, 3] and counts[-1] == 1 and len(counts) == 4


def test_bad_budgets_are_errors(models):
    proc = run_sparq("chat", models["gemma2"], "--ctx", "100000", check=False, input="")
    assert proc.returncode == 1 and "context length of 512" in proc.stderr
    proc = run_sparq("chat", models["gemma2"], "--ctx", "64", "-n", "64", check=False, input="")
    assert proc.returncode == 1 and "leaves no room" in proc.stderr
