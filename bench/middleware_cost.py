"""CPU time the observability middleware adds to one request, measured in process.

A trivial ASGI app (two sends) is called N times bare and N times wrapped in
``observability.middleware.Observe``, alternately, three rounds; the difference of the
medians of ``time.process_time`` per call is the middleware's cost: request id, context,
the send wrapper, one counter and one histogram observation (the request log off, as in
``bench/ingest``). Run twice: metrics in the process (one worker) and in
``PROMETHEUS_MULTIPROC_DIR`` files (several workers)::

    .venv/bin/python bench/middleware_cost.py            # both modes, prints one line each

Compare with the server's CPU time per request from ``bench/ingest`` (``CPU us/req``).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time

N = 100_000
SCOPE = {
    "type": "http",
    "path": "/ca_apis/AddCampaignData",
    "method": "POST",
    "headers": [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"content-length", b"120"),
        (b"user-agent", b"wrk"),
    ],  # fmt: skip
    "client": ("127.0.0.1", 40000),
}


async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b"{}"})


async def send(message) -> None:  # type: ignore[no-untyped-def]
    return None


async def receive() -> dict:
    return {}


async def measure() -> None:
    from dialbase.observability.middleware import Observe

    wrapped = Observe(app)
    bare_runs, observed_runs = [], []
    for _ in range(3):
        for target, runs in ((app, bare_runs), (wrapped, observed_runs)):
            started = time.process_time()
            for _ in range(N):
                await target(SCOPE, receive, send)
            runs.append((time.process_time() - started) / N * 1e6)
    bare, observed = statistics.median(bare_runs), statistics.median(observed_runs)
    mode = "multiprocess files" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "in process"
    print(f"metrics {mode}: bare {bare:.2f} us, observed {observed:.2f} us,"
          f" middleware {observed - bare:.2f} us CPU per request")  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        asyncio.run(measure())
        return
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    subprocess.run([sys.executable, __file__, "--child"], env=env, check=True)
    with tempfile.TemporaryDirectory(prefix="dialbase-metrics-bench-") as folder:
        env["PROMETHEUS_MULTIPROC_DIR"] = folder
        subprocess.run([sys.executable, __file__, "--child"], env=env, check=True)


if __name__ == "__main__":
    main()
