"""Real ``dialbase`` processes for deployment tests: start, wait until ready, stop.

Every server runs in its own process group (uvicorn's workers included), writes its
stdout and stderr to a file, and is killed by the fixture that started it. Every wait
has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
CLI_TIMEOUT = 60.0

# Servers started and not yet stopped: their logs are attached to a failing test's report.
LIVE: list[Server] = []


def dialbase_command() -> list[str]:
    """The ``dialbase`` script of the running interpreter's environment."""
    script = Path(sys.executable).with_name("dialbase")
    if script.exists():
        return [str(script)]
    found = shutil.which("dialbase")
    return [found] if found else [sys.executable, "-m", "dialbase"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without any ``DIALBASE_`` variable, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALBASE_")}
    env.update(settings)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run one ``dialbase`` command; its stdout, or a failure showing both streams."""
    done = subprocess.run(
        [*dialbase_command(), *args],
        env=env if env is not None else clean_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"dialbase {' '.join(args)} exited {done.returncode}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
    return done.stdout


@dataclass
class Server:
    name: str
    port: int
    workers: int
    log: Path
    proc: subprocess.Popen[bytes]
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def started_workers(self) -> int:
        return self.output().count("Application startup complete.")


def start_server(
    log_dir: Path,
    name: str,
    *args: str,
    env: dict[str, str] | None = None,
    workers: int = 1,
    port: int | None = None,
    cwd: Path | None = None,
) -> Server:
    """Start ``dialbase serve`` (not waiting for it); stop it with ``stop``."""
    port = port or free_port()
    argv = ["serve", "--port", str(port), "--workers", str(workers), *args]
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*dialbase_command(), *argv],
            env=env if env is not None else clean_env(),
            cwd=cwd or log_dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, port, workers, log, proc, argv)
    LIVE.append(server)
    return server


def wait_ready(server: Server, timeout: float = STARTUP_TIMEOUT) -> None:
    """Wait until /healthz answers and every worker finished its startup."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise AssertionError(
                    f"{server.name} exited with {server.proc.returncode}:\n{server.output()}"
                )
            try:
                healthy = client.get(f"{server.url}/healthz").status_code == 200
            except httpx.TransportError:
                healthy = False
            if healthy and server.started_workers() >= server.workers:
                return
            time.sleep(0.1)
    raise AssertionError(f"{server.name} not ready after {timeout} s:\n{server.output()}")


def wait_all_ready(servers: list[Server], timeout: float = STARTUP_TIMEOUT) -> None:
    for server in servers:
        wait_ready(server, timeout)


def kill(server: Server, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the server's whole process group (uvicorn's workers included)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.proc.pid, sig)


def stop(server: Server, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process group, SIGKILL it if it has not exited within ``timeout``."""
    if server.proc.poll() is None:
        kill(server, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.proc.wait(timeout)
    kill(server, signal.SIGKILL)  # the parent may be gone while a worker lingers
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.proc.wait(timeout)
    if server in LIVE:
        LIVE.remove(server)


def stop_all(servers: list[Server], timeout: float = STOP_TIMEOUT) -> None:
    """``stop`` every server, signalling them all before waiting for any."""
    for server in servers:
        if server.proc.poll() is None:
            kill(server, signal.SIGTERM)
    for server in servers:
        stop(server, timeout)


class TcpProxy:
    """A TCP relay on 127.0.0.1:``port`` to ``target``, on its own thread and event loop.

    ``cut()`` closes the listener and resets every relayed connection (as a dead host or
    a network partition would look to the client); ``restore()`` listens again on the
    same port.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()
        self._thread.start()

    def _call(self, coro, timeout: float = 10.0):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def restore(self) -> None:
        self._call(self._listen())

    start = restore

    def cut(self) -> None:
        self._call(self._cut())

    def close(self) -> None:
        self.cut()
        self._call(self._finish_relays())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._relay, "127.0.0.1", self.port, reuse_address=True
        )

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def _finish_relays(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._transports |= {writer.transport, up_writer.transport}
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._transports -= {writer.transport, up_writer.transport}


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until either side closes (a TCP relay's one way)."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.transport.abort()
