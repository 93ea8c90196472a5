"""Two `sparq serve` replicas behind HAProxy, configured as docs/deploy/haproxy.cfg (ports changed).

One replica is killed (SIGKILL) while requests run on it, another is drained (SIGTERM): the health
check takes it out, requests that were not running on it never fail (connection refused and 503 are
replayed on the other replica), and only requests that were running on a killed replica may fail.
"""
import csv
import http.client
import io
import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import REPO, run_sparq, sparq_bin

HAPROXY_CFG = REPO / "docs" / "deploy" / "haproxy.cfg"
LISTENING = re.compile(r"sparq serve: listening on http://127\.0\.0\.1:(\d+)")
REPLICA_HEADER = "X-Sparq-Replica"

PROMPTS = [
    "It was a fine morning, and",
    "Mr. Darcy walked into the room and",
    "The letter arrived on a cold day in November. She opened it slowly, read the first line twice, and",
    "Elizabeth",
    "There is, I believe, in every disposition a tendency to some particular evil, and",
]
MAX_TOKENS = 96          # long enough that requests are still running when a replica is stopped
CLIENTS = 6              # < 2 replicas x maxconn 4, > one replica's 4: with one left, requests queue in HAProxy
PHASE1, PHASE2 = 16, 24  # requests before (and around) the stop, then after the replica is DOWN


def haproxy_bin():
    """Debian installs it in /usr/sbin, which is not on a normal user's PATH."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, timeout=5.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def http_post(port, path, body, timeout=120.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


class Replica:
    """`sparq serve MODEL --port 0`; the port comes from its stderr line."""

    def __init__(self, model, parallel, extra=()):
        self.lines = []
        self.port = None
        self._port_seen = threading.Event()
        self.proc = subprocess.Popen(
            [sparq_bin(), "serve", str(model), "--host", "127.0.0.1", "--port", "0", "--threads", "1",
             "--parallel", str(parallel), *map(str, extra)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            m = LISTENING.search(line)
            if m and self.port is None:
                self.port = int(m.group(1))
                self._port_seen.set()
        self._port_seen.set()

    def log(self, n=30):
        return "\n".join(self.lines[-n:])

    def wait_ready(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        if not self._port_seen.wait(timeout) or self.port is None:
            pytest.fail(f"sparq serve printed no 'listening on' line (exit {self.proc.poll()}):\n{self.log()}")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"sparq serve exited with {self.proc.returncode} before ready:\n{self.log()}")
            try:
                if http_get(self.port, "/health", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        pytest.fail(f"sparq serve on port {self.port}: /health not 200 after {timeout:.0f} s:\n{self.log()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def server_lines(text):
    return [ln for ln in text.splitlines() if re.match(r"\s*server\s+\S+\s+127\.0\.0\.1:\d+", ln)]


def replica_parallel():
    """--parallel of the replicas = the maxconn of docs/deploy/haproxy.cfg's server lines."""
    values = {int(m.group(1)) for ln in server_lines(HAPROXY_CFG.read_text())
              for m in [re.search(r"\bmaxconn\s+(\d+)", ln)] if m}
    assert len(values) == 1, f"{HAPROXY_CFG}: the server lines should share one maxconn (= --parallel), got {values}"
    return values.pop()


def haproxy_config(replica_ports, frontend_port, stats_port, stats_socket):
    """docs/deploy/haproxy.cfg with this test's ports, a stats socket in the temporary directory, logs on
    stdout, and what needs root (chroot, user, group, daemon) dropped. Every other setting is kept."""
    out, section, servers, done = [], None, iter(replica_ports), set()
    for line in HAPROXY_CFG.read_text().splitlines():
        stripped = line.strip()
        if line and not line[0].isspace() and not line.startswith("#"):
            section = " ".join(stripped.split()[:2])
        if section == "global" and stripped.split(" ")[0] in ("chroot", "user", "group", "daemon"):
            continue
        if section == "global" and stripped.startswith("log "):
            line = "    log stdout format raw local0"
            done.add("log")
        elif section == "global" and stripped.startswith("stats socket "):
            line = f"    stats socket {stats_socket} mode 600 level admin"
            done.add("socket")
        elif section == "frontend openai" and stripped.startswith("bind "):
            line = f"    bind 127.0.0.1:{frontend_port}"
            done.add("frontend")
        elif section == "listen stats" and stripped.startswith("bind "):
            line = f"    bind 127.0.0.1:{stats_port}"
            done.add("stats")
        elif re.match(r"server\s+\S+\s+127\.0\.0\.1:\d+", stripped):
            line = re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{next(servers)}", line, count=1)
            done.add("servers")
        out.append(line)
    missing = {"log", "socket", "frontend", "stats", "servers"} - done
    assert not missing, f"{HAPROXY_CFG} changed shape; the test found no {sorted(missing)} line to adapt"
    assert len(server_lines("\n".join(out))) == len(replica_ports), "the config should list one server per replica"
    return "\n".join(out) + "\n"


class HAProxy:
    def __init__(self, tmp_path, replica_ports):
        self.port, self.stats_port = free_port(), free_port()
        self.socket = tmp_path / "haproxy.sock"
        self.cfg = tmp_path / "haproxy.cfg"
        self.cfg.write_text(haproxy_config(replica_ports, self.port, self.stats_port, self.socket))
        self.log_path = tmp_path / "haproxy.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([haproxy_bin(), "-f", str(self.cfg), "-db"], stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def log(self):
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def command(self, line):
        """One command on the stats socket (level admin); its answer."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.socket))
            s.sendall(line.encode() + b"\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.decode()

    def stat(self, servers_only=True):
        """`show stat` rows of the backend sparq, by server name (and BACKEND unless servers_only)."""
        rows = csv.DictReader(io.StringIO(self.command("show stat").lstrip("# ")))
        found = {r["svname"]: r for r in rows
                 if r["pxname"] == "sparq" and r["svname"] != "FRONTEND" and not (servers_only and r["svname"] == "BACKEND")}
        for row in found.values():
            # HAProxy marks the last result "* L4CON" while the next check is already running; the result is
            # the same, so the mark is dropped.
            row["check_status"] = (row.get("check_status") or "").removeprefix("* ")
        return found

    def wait_status(self, server, prefix, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"haproxy exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                last = self.stat().get(server)
                if last and last["status"].startswith(prefix):
                    return last
            except OSError:
                pass
            time.sleep(0.1)
        pytest.fail(f"haproxy: server {server} not {prefix} after {timeout:.0f} s (last: {last})\n{self.log()[-3000:]}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class Client:
    """Streaming /v1/completions through the balancer; every request's record is kept."""

    def __init__(self, port):
        self.port = port
        self.lock = threading.Lock()
        self.records = []

    def completion(self, i):
        rec = dict(i=i, t_start=None, t_end=None, status=None, replica=None, error=None, text="", tokens=None)
        body = json.dumps({"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": MAX_TOKENS, "temperature": 0,
                           "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        with self.lock:
            rec["t_start"] = time.monotonic()
            self.records.append(rec)
        try:
            conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            rec["status"], rec["replica"] = resp.status, resp.getheader(REPLICA_HEADER)
            if resp.status != 200:
                rec["error"] = f"HTTP {resp.status}: {resp.read()[:300]!r}"
                return rec
            done = False
            for raw in resp:
                line = raw.decode().rstrip("\r\n")
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    done = True
                    break
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    rec["error"] = f"error event: {chunk['error']}"
                    return rec
                rec["text"] += "".join(c.get("text", "") for c in chunk.get("choices", []))
                if chunk.get("usage"):
                    rec["tokens"] = chunk["usage"]["completion_tokens"]
            if not done:
                rec["error"] = "stream ended without data: [DONE]"
            elif rec["tokens"] != MAX_TOKENS:
                rec["error"] = f"usage.completion_tokens {rec['tokens']}, expected {MAX_TOKENS} (ignore_eos)"
        except (OSError, http.client.HTTPException, ValueError) as e:
            rec["error"] = f"{type(e).__name__}: {e}"
        finally:
            conn.close()
            with self.lock:
                rec["t_end"] = time.monotonic()
        return rec

    def in_flight(self):
        """Started and not finished; call with self.lock held."""
        return [r for r in self.records if r["t_end"] is None]

    def summary(self, records=None):
        return "\n".join(
            f"  #{r['i']:2d} start {r['t_start']:.3f} end {r['t_end'] if r['t_end'] is None else round(r['t_end'], 3)} "
            f"replica {r['replica']} status {r['status']} error {r['error']}"
            for r in sorted(records if records is not None else self.records, key=lambda r: r["t_start"]))


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    if haproxy_bin() is None:
        pytest.fail("haproxy is not installed: scripts/setup.sh installs it (Debian package haproxy); "
                    "or run `apt-get install -y haproxy` as root")
    path = tmp_path_factory.mktemp("serve") / "demo-w8a8.sparq"
    run_sparq("convert", REPO / "models" / "demo" / "w8a8", "-o", path)
    return path


@pytest.fixture
def cluster(demo_model, tmp_path):
    """Two ready replicas and HAProxy with both servers UP."""
    started = []
    try:
        parallel = replica_parallel()
        replicas = [Replica(demo_model, parallel), Replica(demo_model, parallel)]
        started += replicas
        for r in replicas:
            r.wait_ready()
        lb = HAProxy(tmp_path, [r.port for r in replicas])
        started.append(lb)
        names = sorted(lb.wait_status(s, "UP", 15)["svname"] for s in ("sparq1", "sparq2"))
        yield replicas, lb, names
    finally:
        for p in reversed(started):
            p.stop()


def run_with_stop(lb, names, stop_replica, client_threads=CLIENTS):
    """Phase 1: PHASE1 requests; once both replicas answered one and a request is running on sparq2,
    stop_replica() is called (under the client's lock: no request starts meanwhile, so the in-flight set is
    exact). Then wait until HAProxy marks sparq2 DOWN and run PHASE2 more requests.
    Returns (client, records in flight at the stop, time of the stop, time DOWN was seen, its stat row)."""
    victim = names[1]
    client = Client(lb.port)
    with ThreadPoolExecutor(client_threads) as pool:
        phase1 = [pool.submit(client.completion, i) for i in range(PHASE1)]
        deadline = time.monotonic() + 60
        in_flight_at_stop = None
        while time.monotonic() < deadline and not all(f.done() for f in phase1):
            with client.lock:
                answered = {r["replica"] for r in client.records if r["t_end"] is not None and r["error"] is None}
                on_victim = [r for r in client.in_flight() if r["replica"] == victim]
                if answered == set(names) and on_victim:
                    in_flight_at_stop = client.in_flight()
                    stop_replica()
                    t_stop = time.monotonic()
                    break
            time.sleep(0.005)
        assert in_flight_at_stop is not None, (
            f"no request was running on {victim} while the first {PHASE1} ran: they are too short, or "
            f"{REPLICA_HEADER} is missing\n{client.summary()}\n{lb.log()[-2000:]}")
        for f in phase1:
            f.result(timeout=120)
        down = lb.wait_status(victim, "DOWN", 20)
        t_down = time.monotonic()
        phase2 = [pool.submit(client.completion, PHASE1 + i) for i in range(PHASE2)]
        for f in phase2:
            f.result(timeout=120)
    return client, in_flight_at_stop, t_stop, t_down, down


def test_killed_replica_only_fails_its_running_requests(cluster):
    replicas, lb, names = cluster
    victim, survivor = names[1], names[0]

    def kill():
        # Wait until it is gone (its sockets closed): requests started later must not reach it.
        replicas[1].proc.send_signal(signal.SIGKILL)
        replicas[1].proc.wait(timeout=10)

    client, in_flight, t_kill, t_down, down = run_with_stop(lb, names, kill)
    records = client.records
    assert len(records) == PHASE1 + PHASE2
    failed = [r for r in records if r["error"] is not None]
    in_flight_ids = {r["i"] for r in in_flight}
    # Requests running on the survivor at the kill are not at risk; those whose replica was not yet
    # known (no response headers) may have been on either.
    at_risk = [r for r in in_flight if r["replica"] != survivor]
    details = f"kill at {t_kill:.3f}, DOWN seen at {t_down:.3f}\n{client.summary()}"
    print(f"{len(records)} requests, {len(in_flight)} running at the kill ({len(at_risk)} not on {survivor}), "
          f"{len(failed)} failed; {victim} DOWN {t_down - t_kill:.2f} s after the kill")

    # Every failure is a request that was running when the replica was killed, and on that replica.
    assert {r["i"] for r in failed} <= in_flight_ids, f"requests failed that were not running at the kill:\n{details}"
    for r in failed:
        assert r["replica"] in (None, victim), f"request #{r['i']} failed on {r['replica']}:\n{details}"
    assert len(failed) <= len(at_risk), f"{len(failed)} failures > {len(at_risk)} requests at risk:\n{details}"
    # Requests started after the kill all succeed: refused connections are retried on the other replica
    # before the health check notices, and after it only the survivor gets requests.
    after_kill = [r for r in records if r["t_start"] > t_kill]
    assert after_kill and all(r["error"] is None for r in after_kill), details
    after_down = [r for r in records if r["t_start"] > t_down]
    assert len(after_down) == PHASE2, details
    assert all(r["replica"] == survivor for r in after_down), details
    # Both replicas answered before the kill.
    assert {r["replica"] for r in records if r["t_end"] < t_kill and r["error"] is None} == {victim, survivor}, details

    # The /health checks as HAProxy saw them: the survivor answers 200, the killed one refuses.
    stat = lb.stat()
    assert stat[survivor]["status"].startswith("UP") and stat[survivor]["check_status"] == "L7OK", stat[survivor]
    assert stat[survivor]["check_code"] == "200", stat[survivor]
    # Layer-4 failures: refused, timed out, or a socket error (a check connected just before the kill
    # is reset by it).
    assert down["check_status"] in ("L4CON", "L4TOUT", "SOCKERR"), down
    assert int(down["chkdown"]) >= 1, down
    assert re.search(rf"Server sparq/{victim} is DOWN", lb.log()), lb.log()[-3000:]


@pytest.mark.parametrize("procedure,clients", [("drain-in-haproxy-then-sigterm", CLIENTS), ("sigterm-only", 3)])
def test_drained_replica_fails_no_request(cluster, procedure, clients):
    """A rolling restart as docs/DEPLOY.md describes it: the replica's running requests finish, /health
    turns 503 and the check takes it out, and no request fails.
    - Under full load (CLIENTS requests at once, more than the other replica's maxconn), the replica is
      first set to drain in HAProxy (no new requests, queued ones wait for the other), then SIGTERM.
    - SIGTERM alone, while the other replica has free slots (3 clients < its maxconn): requests that reach
      the draining replica get 503 and HAProxy replays them on the other one."""
    replicas, lb, names = cluster
    victim = names[1]
    # A long request sent to the replica directly keeps it draining for a while after SIGTERM, so that
    # HAProxy sends it requests in the meantime (until its check fails); the drain must finish it.
    held = {}

    def hold():
        held["status"], held["body"] = http_post(replicas[1].port, "/v1/completions", {
            "prompt": PROMPTS[0], "max_tokens": 900, "temperature": 0, "ignore_eos": True})

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()

    def stop():
        if procedure.startswith("drain"):
            answer = lb.command(f"set server sparq/{victim} state drain")
            assert answer.strip() == "", answer
        replicas[1].proc.send_signal(signal.SIGTERM)

    client, in_flight, t_term, t_down, down = run_with_stop(lb, names, stop, client_threads=clients)
    holder.join(timeout=60)
    details = (f"SIGTERM at {t_term:.3f}, DOWN seen at {t_down:.3f}\n{client.summary()}\n--- haproxy:\n"
               f"{lb.log()[-3000:]}\n--- {victim} stderr:\n{replicas[1].log()}")
    refused = [ln for ln in replicas[1].lines if re.search(r"POST /v1/completions 503\b", ln)]
    backend = lb.stat(servers_only=False)["BACKEND"]
    print(f"{procedure}: {len(client.records)} requests, {len(refused)} got 503 from the draining replica, "
          f"HAProxy retries {backend['wretr']} redispatches {backend['wredis']}")
    # Including the requests that were running on it at SIGTERM: it finished them.
    assert [r for r in client.records if r["error"] is not None] == [], details
    assert held.get("status") == 200 and held["body"]["usage"]["completion_tokens"] == 900, (held, details)
    assert replicas[1].proc.wait(timeout=40) == 0, details
    assert down["check_status"] in ("L7STS", "L4CON"), down
    # Requests sent after the stop were all answered by the other replica (a 503 from the draining one,
    # for a request HAProxy had already sent it, was replayed).
    after = [r for r in client.records if r["t_start"] > t_term]
    assert after and all(r["replica"] == names[0] for r in after), details
