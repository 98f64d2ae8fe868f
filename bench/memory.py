#!/usr/bin/env python3
"""Memory soak: about N requests into one dialbase worker, sampling its VmRSS.

    .venv/bin/python bench/memory.py [--requests 1000000] [--backend sqlite] [--max-seconds 900]

wrk runs in chunks (--chunk seconds each) until the request budget or the time
limit is reached; RSS is sampled every --interval seconds in the background.
Prints progress per chunk and start/peak/end RSS.
"""

import argparse
import os
import threading
import time

from benchlib import DIALBASE_CMD, ensure_wrk, rss_kb, run_wrk, serve_app


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1_000_000, help="request budget")
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--max-seconds", type=int, default=900, help="stop after this long anyway")
    ap.add_argument("--chunk", type=int, default=15, help="seconds per wrk run")
    ap.add_argument("--interval", type=float, default=2, help="seconds between RSS samples")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument(
        "--dialbase-cmd",
        default=os.environ.get("BENCH_DIALBASE_CMD", DIALBASE_CMD),
        help="testing only: server command template instead of 'dialbase serve'",
    )
    return ap.parse_args()


class RssSampler(threading.Thread):
    """Samples the RSS (KiB) of a process tree every interval seconds until stopped."""

    def __init__(self, pid: int, interval: float):
        super().__init__(daemon=True)
        self.pid, self.interval, self.samples = pid, interval, [rss_kb(pid)]
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.samples.append(rss_kb(self.pid))

    def stop(self) -> list:
        self.stopped.set()
        self.join()
        self.samples.append(rss_kb(self.pid))
        return self.samples


def soak(args, server, key: str) -> int:
    """Run wrk chunks until the budget or time limit; return the requests sent."""
    sent, chunk, deadline = 0, 0, time.monotonic() + args.max_seconds
    while sent < args.requests and time.monotonic() + args.chunk <= deadline:
        chunk += 1
        r = run_wrk(server.port, args.chunk, chunk, key, connections=args.connections)
        sent += r["requests"]
        print(
            f"chunk {chunk}: {sent:>9} requests  {r['rps']:7.0f} req/s  non-2xx {r['non_2xx']}"
            f"  RSS {rss_kb(server.pid) / 1024:.1f} MiB",
            flush=True,
        )
    return sent


def main() -> None:
    args = parse_args()
    ensure_wrk()
    with serve_app(args.dialbase_cmd, args.backend, "memory") as (server, key):
        sampler = RssSampler(server.pid, args.interval)
        sampler.start()
        sent = soak(args, server, key)
        samples = [kb / 1024 for kb in sampler.stop()]
    print(
        f"\n{args.backend}: {sent} requests; RSS start {samples[0]:.1f} MiB, "
        f"peak {max(samples):.1f} MiB, end {samples[-1]:.1f} MiB ({len(samples)} samples)"
    )


if __name__ == "__main__":
    main()
