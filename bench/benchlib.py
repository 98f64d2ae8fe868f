"""Shared helpers for the dialbase benchmarks: wrk, servers, databases, RSS."""

import asyncio
import http.client
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import orjson
from profile_top import top_functions

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
DIALBASE = VENV_BIN / "dialbase"
LUA = BENCH / "ingest.lua"
API_KEY = "benchkey123"
ACCOUNT_LIMIT = 100_000_000  # requests a minute per account: never reached
PG_URL = "postgresql://postgres@127.0.0.1:5432/{}"
PSQL = [
    "psql",
    "-h",
    "127.0.0.1",
    "-U",
    "postgres",
    "-d",
    "postgres",
    "-qAt",
    "-v",
    "ON_ERROR_STOP=1",
]
SERVER_ENV = {"DIALBASE_LOG_LEVEL": "warning", "DIALBASE_IP_RATE_LIMIT": "100000000"}
REFERENCE_CMD = "{python} bench/reference_app.py --port {port} --database-url {url}"
DIALBASE_CMD = "{dialbase} serve --host 127.0.0.1 --port {port} --database-url {url}"


def die(msg: str) -> None:
    sys.exit(f"bench: error: {msg}")


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    """Run a command with a bounded runtime, capturing text output."""
    return subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        timeout=kw.pop("timeout", 120),
        cwd=ROOT,
        **kw,
    )


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    print("bench: wrk not found, installing it with apt-get ...", flush=True)
    steps = (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"])
    if not all(run(s, timeout=600).returncode == 0 for s in steps) or not shutil.which("wrk"):
        die("wrk is missing and 'apt-get install -y wrk' failed (needs root and Debian's archive)")


def pinned(cpu: int) -> list:
    """taskset prefix pinning a command to one CPU, when taskset and 2+ CPUs exist."""
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() > 1 else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(sql: str) -> None:
    if not shutil.which("psql"):
        die("psql not found (apt-get install -y postgresql-client)")
    res = run(PSQL + ["-c", sql], timeout=60)
    if res.returncode:
        die(f"psql {sql!r} failed: {res.stderr.strip()}")


@contextmanager
def fresh_database(backend: str, tag: str):
    """Yield the URL of a new, empty database; delete it afterwards."""
    if backend == "sqlite":
        tmp = tempfile.mkdtemp(prefix="dialbase-bench-")
        try:
            yield f"sqlite:///{tmp}/{tag}.db"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    name = f"dialbase_bench_{os.getpid()}_{tag}"
    psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    psql(f"CREATE DATABASE {name}")
    try:
        yield PG_URL.format(name)
    finally:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def bench_accounts() -> int:
    """How many accounts the load is spread over (``BENCH_ACCOUNTS``, default 1)."""
    return int(os.environ.get("BENCH_ACCOUNTS", "1"))


def dialbase_setup(url: str) -> str:
    """Create the bench accounts, each with a campaign "Bench"; return their API key.

    bench_accounts() accounts (bench000, bench001, ...) share the load the way the accounts
    of a hosted deployment do; each one's limit (ACCOUNT_LIMIT a minute) is far above its
    share, so the limiter counts every request but refuses none.
    """
    if not DIALBASE.exists():
        die(f"{DIALBASE} not found: install dialbase into the venv (pip install -e .)")
    asyncio.run(_seed(url))
    return API_KEY


def account_key(index: int) -> str:
    """Bench account ``index``'s API key (keys are unique across accounts); ingest.lua
    derives the same ones from ``API_KEY``."""
    return API_KEY if index == 0 else f"{API_KEY}{index:03d}"


async def _seed(url: str) -> None:
    from dialbase.accounts.service import create_account
    from dialbase.campaigns.service import create_campaign
    from dialbase.config import Settings
    from dialbase.db import create_engine, make_sessionmaker, session_scope
    from dialbase.migrate import upgrade

    engine = create_engine(Settings(database_url=url))
    try:
        await upgrade(engine)
        async with session_scope(make_sessionmaker(engine)) as session:
            for i in range(bench_accounts()):
                user = f"bench{i:03d}"
                key = account_key(i)
                account, _ = await create_account(
                    session, user, api_key=key, rate_limit=ACCOUNT_LIMIT
                )
                await create_campaign(session, user, "Bench", dial_type="Progressive")
                if webhook_events():
                    await _webhook(session, account)
    finally:
        await engine.dispose()


def webhook_events() -> list[str]:
    """``BENCH_WEBHOOK_EVENTS`` (comma-separated): give every bench account a webhook
    enabling these events (empty: no webhook, the default)."""
    return [item for item in os.environ.get("BENCH_WEBHOOK_EVENTS", "").split(",") if item]


async def _webhook(session, account) -> None:
    """A webhook to a closed local port: its address is refused at send time (private
    addresses are not allowed to the server), so each event is written, claimed once and
    kept as failed, without network traffic."""
    from dialbase.webhooks.service import WebhookRequest, put_webhook

    request = WebhookRequest("http://127.0.0.1:9/bench", None, tuple(webhook_events()))
    await put_webhook(session, account, None, request)


def _ppid(pid: str) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its descendants so far."""
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> list:
    """PIDs of root and all its descendants."""
    parents = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            with suppress(OSError, ValueError, IndexError):
                parents[int(p.name)] = _ppid(p.name)
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parents.items() if ppid in frontier]
        tree += frontier
    return tree


def rss_kb(pid: int) -> int:
    """Resident memory (VmRSS) of pid plus its descendants, in KiB."""
    total = 0
    for p in process_tree(pid):
        try:
            lines = Path(f"/proc/{p}/status").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith("VmRSS:"))
    return total


class Server:
    """A server in its own process group, pinned to CPU 0, logging to a temp file."""

    def __init__(self, cmd: list, env: dict, port: int):
        self.port, self.cmd = port, [str(c) for c in cmd]
        self.log = tempfile.NamedTemporaryFile(prefix="dialbase-bench-", suffix=".log")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            pinned(0) + self.cmd,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.proc.pid  # taskset and console scripts exec, so this is the server

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-n:])

    def healthy(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                die(
                    f"server not ready: {shlex.join(self.cmd)}\n--- log tail ---\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        for sig, wait in ((signal.SIGINT, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.pid, sig)
                self.proc.wait(wait)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        self.log.close()


@contextmanager
def running_server(cmd: list, env: dict, port: int):
    server = Server(cmd, env, port)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def wrk(port: int, seconds: float, script: Path, path: str, args: list, **kw) -> dict:
    """One wrk run (pinned to CPU 1) of a script printing ``BENCH_RESULT {json}``; returns
    that JSON plus rps and non_2xx.  kw: connections (32), threads (1)."""
    cmd = pinned(1) + [
        "wrk",
        f"-t{kw.get('threads', 1)}",
        f"-c{kw.get('connections', 32)}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        script,
        f"http://127.0.0.1:{port}{path}",
        "--",
        *args,
    ]
    res = run(cmd, timeout=seconds + 60)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if res.returncode or not line:
        die(f"wrk failed ({res.returncode}):\n{res.stdout}{res.stderr}")
    result = orjson.loads(line.split(" ", 1)[1])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["non_2xx"] = sum(n for code, n in result["status"].items() if not code.startswith("2"))
    return result


def run_wrk(
    port: int, seconds: float, run_index: int, api_key: str, connections: int = 32, threads: int = 1
) -> dict:
    """One wrk run with ingest.lua; returns its BENCH_RESULT plus rps and non_2xx."""
    args = [run_index, api_key, bench_accounts()]
    path = "/ca_apis/AddCampaignData"
    return wrk(port, seconds, LUA, path, args, connections=connections, threads=threads)


def ensure_py_spy() -> str:
    py_spy = VENV_BIN / "py-spy"
    if not py_spy.exists():
        print("bench: installing py-spy into the venv ...", flush=True)
        run([VENV_BIN / "python", "-m", "pip", "install", "-q", "py-spy"], timeout=300)
    if not py_spy.exists():
        die("py-spy is missing and '.venv/bin/python -m pip install py-spy' failed")
    return str(py_spy)


def profile(pid: int, load, stem: str) -> dict | None:
    """Record one load run with py-spy attached to the server; write
    ``results/<stem>.txt`` (raw stacks) and ``results/<stem>-top.txt``; the run's result.

    --gil samples only the thread holding the GIL, i.e. where the worker's Python CPU
    time goes: without it, threads parked in C waits (aiosqlite, executors) count as busy.
    """
    raw, top = RESULTS / f"{stem}.txt", RESULTS / f"{stem}-top.txt"
    raw.unlink(missing_ok=True)
    spy = subprocess.Popen(
        [ensure_py_spy(), "record", "--pid", str(pid), "--subprocesses", "--gil"]
        + ["--rate", "200", "--format", "raw", "-o", str(raw)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(1)  # let py-spy attach
    result = load()
    spy.send_signal(signal.SIGINT)  # py-spy writes the profile and exits
    output = spy.communicate(timeout=60)[0]
    if not raw.exists():
        print(
            f"bench: py-spy failed (ptrace not permitted?), no profile:\n{output}", file=sys.stderr
        )
        return None
    top.write_text(top_functions(raw))
    print(f"bench: profiled run: {result['rps']:.0f} req/s; wrote {raw} and {top}", flush=True)
    return result


def environment(args, stand_in: bool) -> dict:
    """Where and how a benchmark ran, for its results file."""
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.machine(),
    )
    commit = run(["git", "rev-parse", "--short", "HEAD"]).stdout.strip()
    return {
        "command": " ".join(sys.argv),
        "args": vars(args),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "git_commit": commit or None,
        "load_average_at_end": os.getloadavg(),
        "wrk": run(["wrk", "-v"]).stdout.splitlines()[0],
        "dialbase_stand_in": stand_in,
    }


def warn_if_busy(args) -> None:
    """Record the load average at the start; warn when other work will skew the numbers."""
    args.load_average_at_start = load = os.getloadavg()
    if load[0] > 0.5:
        print(
            f"bench: warning: load average {load[0]:.1f}: other work on this machine will skew "
            "the numbers",
            file=sys.stderr,
        )


@contextmanager
def serve_app(template: str, backend: str, tag: str):
    """Fresh database, dialbase CLI setup (real dialbase only) and a ready server.

    template is REFERENCE_CMD, DIALBASE_CMD or a test stand-in using the same
    {python} {dialbase} {port} {url} fields.  Yields (server, api_key).
    """
    with fresh_database(backend, tag) as url:
        key = dialbase_setup(url) if template == DIALBASE_CMD else API_KEY
        port = free_port()
        cmd = shlex.split(template.format(python=PYTHON, dialbase=DIALBASE, port=port, url=url))
        with running_server(cmd, {**SERVER_ENV, "DIALBASE_DATABASE_URL": url}, port) as server:
            yield server, key
