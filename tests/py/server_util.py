"""`sparq serve` as a real subprocess for the HTTP tests: the demo model converted once per session,
a server on a free port (--port 0, the port read from its `listening on` line), its stderr drained on
a thread into a buffer that tests can read, /health polled until ready, and SIGTERM on teardown with
a bounded wait (SIGKILL if the server does not go)."""
import json
import re
import signal
import subprocess
import threading
import time

import pytest
import requests

from conftest import REPO, run_sparq, sparq_bin

DEMO = REPO / "models" / "demo" / "w8a8"
DEMO_NAME = "demo-w8a8"  # the converted file's stem: the default --served-model-name
LISTENING = re.compile(r"sparq serve: listening on http://127\.0\.0\.1:(\d+)")
START_TIMEOUT = 60  # seconds from launch to /health 200 on a busy 2-core machine
STOP_TIMEOUT = 30   # seconds from SIGTERM to exit when nothing is running


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve-model") / f"{DEMO_NAME}.sparq"
    run_sparq("convert", DEMO, "-o", path, "-q")
    return path


def http_session():
    """requests session that ignores proxy settings from the environment."""
    s = requests.Session()
    s.trust_env = False
    return s


class Server:
    """One `sparq serve FILE --host 127.0.0.1 --port 0 *flags` process."""

    def __init__(self, model, *flags, start_timeout=START_TIMEOUT, ready_status=200):
        self.args = [sparq_bin(), "serve", str(model), "--host", "127.0.0.1", "--port", "0", *map(str, flags)]
        self._log = []
        self._lock = threading.Lock()
        self._port_found = threading.Event()
        self.port = None
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self._threads = [threading.Thread(target=self._drain, args=(self.proc.stderr, True), daemon=True),
                         threading.Thread(target=self._drain, args=(self.proc.stdout, False), daemon=True)]
        for t in self._threads:
            t.start()
        self.http = http_session()
        try:
            self._wait_ready(start_timeout, ready_status)
        except BaseException:
            self.kill()
            raise

    # -- output --------------------------------------------------------------------------------------
    def _drain(self, pipe, is_stderr):
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            with self._lock:
                self._log.append(line if is_stderr else "[stdout] " + line)
            if is_stderr and self.port is None:
                m = LISTENING.search(line)
                if m:
                    self.port = int(m.group(1))
                    self._port_found.set()
        pipe.close()

    @property
    def log(self):
        """Everything the server wrote so far (stdout lines prefixed with [stdout])."""
        with self._lock:
            return "".join(self._log)

    def log_lines(self):
        with self._lock:
            return list(self._log)

    # -- start / stop --------------------------------------------------------------------------------
    def _wait_ready(self, timeout, status):
        deadline = time.monotonic() + timeout
        while not self._port_found.wait(0.05):
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the drain thread take the last lines
                raise AssertionError(f"sparq serve exited with {self.proc.returncode} before listening:\n"
                                     f"{' '.join(self.args)}\n{self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no 'listening on' line within {timeout} s:\n{self.log}")
        while True:
            try:
                r = self.http.get(self.url("/health"), timeout=2)
                if r.status_code == status and (status == 200 or r.json().get("status") != "loading"):
                    return
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None:
                time.sleep(0.2)
                raise AssertionError(f"sparq serve exited with {self.proc.returncode} while loading:\n{self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"/health not {status} within {timeout} s:\n{self.log}")
            time.sleep(0.1)

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def url(self, path):
        return self.base + path

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig=signal.SIGTERM):
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout):
        """Exit code, or None if still running after timeout seconds."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit code (None: killed)."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            rc = self.wait(timeout)
            if rc is None:
                self.kill()
                return None
        self._join()
        return self.proc.returncode

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._join()

    def _join(self):
        for t in self._threads:
            t.join(timeout=5)
        self.http.close()

    # -- requests ------------------------------------------------------------------------------------
    def get(self, path, timeout=60, **kw):
        return self.http.get(self.url(path), timeout=timeout, **kw)

    def post(self, path, body=None, timeout=60, **kw):
        """POST a JSON body (dict or list) or raw bytes/str (data=...)."""
        if body is not None:
            kw["data"] = json.dumps(body)
            kw.setdefault("headers", {})
            kw["headers"] = {"Content-Type": "application/json", **kw["headers"]}
        return self.http.post(self.url(path), timeout=timeout, **kw)

    def metrics(self):
        r = self.get("/metrics", timeout=10)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.text


def serve(model, *flags):
    """Context-managed Server whose exit code after SIGTERM must be 0."""
    return _Managed(model, flags)


class _Managed:
    def __init__(self, model, flags):
        self.model, self.flags, self.server = model, flags, None

    def __enter__(self):
        self.server = Server(self.model, *self.flags)
        return self.server

    def __exit__(self, exc_type, exc, tb):
        rc = self.server.stop()
        if exc_type is None:
            assert rc == 0, f"sparq serve exited with {rc} after SIGTERM (None: killed after " \
                            f"{STOP_TIMEOUT} s):\n{self.server.log}"
        return False


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)', line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return out


def metric(samples, name, **labels):
    """Sum of the samples of a metric whose labels include the given ones (None: no sample)."""
    want = set(labels.items())
    vals = [v for (n, ls), v in samples.items() if n == name and want <= set(ls)]
    return sum(vals) if vals else None


def sse_events(response):
    """Yields the JSON payloads of an SSE stream (requests response with stream=True); the string
    "[DONE]" for the end marker. Comment lines (`: ping`) are skipped."""
    data = []
    for raw in response.iter_lines(decode_unicode=False):
        line = raw.decode("utf-8")
        if line == "":
            if data:
                payload = "\n".join(data)
                data = []
                yield "[DONE]" if payload == "[DONE]" else json.loads(payload)
            continue
        if line.startswith(":"):
            continue
        if line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        payload = "\n".join(data)
        yield "[DONE]" if payload == "[DONE]" else json.loads(payload)
