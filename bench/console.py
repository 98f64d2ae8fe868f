"""Console pages over HTTP with a million leads in the campaign: p50 / p95 / max per page.

    .venv/bin/python bench/console.py --backend sqlite
    .venv/bin/python bench/console.py --backend postgres   # needs the local PostgreSQL

Loads the leads straight into the database (SQLite executemany, PostgreSQL COPY), not
through the API: 90% pending, 5% done, 2% retry, 2% leased, 1% expired, and 20,000 leases
in the last 24 hours (the chart). Then starts one ``dialbase serve`` worker, signs in
through the form and requests each page ``--requests`` times from ``--browsers`` clients
at once (sequential requests per client). Prints a table and writes it as JSON under
bench/results/. docs/performance.md ("The web console") has the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
DIALBASE = ROOT / ".venv" / "bin" / "dialbase"
RESULTS = ROOT / "bench" / "results"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
KEY = "console-bench-key"
STATES = ["pending"] * 90 + ["done"] * 5 + ["retry"] * 2 + ["leased"] * 2 + ["expired"]


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(DIALBASE), *args], env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode:
        sys.exit(f"dialbase {' '.join(args)}: {done.stderr}")
    return done.stdout


def rows(count: int, campaign_id: int, now: datetime, start: int) -> list[tuple]:
    out = []
    for n in range(start, start + count):
        state = STATES[n % len(STATES)]
        number = f"98{n:08d}"
        ahead = timedelta(seconds=3600 + n % 7200)  # retries due in the next hours
        due = now + ahead if state == "retry" else now - timedelta(seconds=n % 3600)
        out.append(
            (
                campaign_id,
                number,
                "+91" + number,
                "Asia/Kolkata",
                f"Person {n}",
                1 + n % 3,
                "{}",
                state,
                1 if state in ("done", "retry", "leased") else 0,
                due,
                now - timedelta(seconds=10_000_000 - n),
            )
        )
    return out


COLUMNS = (
    "campaign_id, phone_number, phone_e164, time_zones, name, priority, extra, status,"
    " attempts, due_at, created_at"
)


def load_sqlite(path: Path, campaign_id: int, count: int) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    marks = ",".join("?" * 11)
    for start in range(0, count, 100_000):
        batch = rows(min(100_000, count - start), campaign_id, now, start)
        conn.executemany(f"INSERT INTO leads ({COLUMNS}) VALUES ({marks})", batch)
        conn.commit()
    conn.execute("INSERT OR IGNORE INTO campaign_zones VALUES (?, 'Asia/Kolkata')", (campaign_id,))
    leases = [
        (
            uuid.uuid4().hex,
            campaign_id,
            n + 1,
            1,
            now - timedelta(minutes=n % 1440),
            now,
            "connected" if n % 4 == 0 else "no_answer",
        )
        for n in range(20_000)
    ]
    conn.executemany(
        "INSERT INTO leases (id, campaign_id, lead_id, attempt, leased_at, deadline, outcome)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        leases,
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


async def load_postgres(url: str, campaign_id: int, count: int) -> None:
    now = datetime.now(UTC)
    conn = await asyncpg.connect(url)
    names = [c.strip() for c in COLUMNS.split(",")]
    for start in range(0, count, 100_000):
        batch = rows(min(100_000, count - start), campaign_id, now, start)
        await conn.copy_records_to_table("leads", records=batch, columns=names)
    await conn.execute(
        "INSERT INTO campaign_zones VALUES ($1, 'Asia/Kolkata') ON CONFLICT DO NOTHING",
        campaign_id,
    )
    first = await conn.fetchval("SELECT min(id) FROM leads")
    leases = [
        (
            uuid.uuid4().hex,
            campaign_id,
            first + n,
            1,
            now - timedelta(minutes=n % 1440),
            now,
            "connected" if n % 4 == 0 else "no_answer",
        )
        for n in range(20_000)
    ]
    await conn.copy_records_to_table(
        "leases",
        records=leases,
        columns=["id", "campaign_id", "lead_id", "attempt", "leased_at", "deadline", "outcome"],
    )
    await conn.execute("VACUUM ANALYZE leads")
    await conn.execute("VACUUM ANALYZE leases")
    await conn.close()


async def sign_in(client: httpx.AsyncClient) -> None:
    page = await client.get("/console/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    answer = await client.post(
        "/console/sign-in",
        data={"csrf_token": token.group(1), "username": "bench", "api_key": KEY},
    )
    assert answer.status_code == 303, answer.text


async def measure(base: str, pages: dict[str, str], requests: int, browsers: int) -> dict:
    clients = [httpx.AsyncClient(base_url=base, timeout=60) for _ in range(browsers)]
    for client in clients:
        await sign_in(client)
    results = {}
    for name, url in pages.items():
        first_started = time.perf_counter()
        first = await clients[0].get(url)
        first_ms = (time.perf_counter() - first_started) * 1000
        assert first.status_code == 200, (url, first.status_code, first.text[:300])
        times: list[float] = []

        async def browse(
            client: httpx.AsyncClient, url: str = url, times: list[float] = times
        ) -> None:
            for _ in range(requests // browsers):
                started = time.perf_counter()
                answer = await client.get(url)
                times.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, (url, answer.status_code)

        await asyncio.gather(*(browse(c) for c in clients))
        times.sort()
        results[name] = {
            "first_ms": round(first_ms, 1),
            "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[int(len(times) * 0.95) - 1], 1),
            "max_ms": round(times[-1], 1),
            "requests": len(times),
        }
        row = results[name]
        print(
            f"{name:28} first {row['first_ms']:8.1f}  p50 {row['p50_ms']:7.1f}"
            f"  p95 {row['p95_ms']:7.1f}  max {row['max_ms']:7.1f} ms",
            flush=True,
        )
    for client in clients:
        await client.aclose()
    return results


COUNTS = "SELECT status, count(*) FROM leads WHERE campaign_id = 1 GROUP BY status"


def counts_query_ms(backend: str, url: str, path: Path) -> float:
    """The live counts' query alone, median of 5 (what one refresh costs the database)."""
    times = []
    if backend == "sqlite":
        conn = sqlite3.connect(path)
        for _ in range(5):
            started = time.perf_counter()
            conn.execute(COUNTS).fetchall()
            times.append((time.perf_counter() - started) * 1000)
        conn.close()
    else:

        async def run() -> None:
            conn = await asyncpg.connect(url)
            for _ in range(5):
                started = time.perf_counter()
                await conn.fetch(COUNTS)
                times.append((time.perf_counter() - started) * 1000)
            await conn.close()

        asyncio.run(run())
    return round(statistics.median(times), 1)


def wait_ready(base: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("dialbase serve exited")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    sys.exit("dialbase serve not ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--browsers", type=int, default=4)
    parser.add_argument("--port", type=int, default=8931)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="console-bench-"))
    database = None
    if args.backend == "sqlite":
        url = f"sqlite:///{work / 'bench.db'}"
    else:
        database = f"console_bench_{uuid.uuid4().hex[:8]}"
        subprocess.run(["psql", PG_ADMIN, "-qc", f'CREATE DATABASE "{database}"'], check=True)
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + database
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALBASE_")}
    env |= {
        "DIALBASE_DATABASE_URL": url,
        "DIALBASE_LOG_LEVEL": "warning",
        "DIALBASE_IMPORT_DIR": str(work / "imports"),
    }
    proc = None
    try:
        cli(env, "db", "upgrade")
        cli(env, "account", "create", "--username", "bench", "--api-key", KEY)
        cli(
            env,
            "campaign",
            "create",
            "--username",
            "bench",
            "--name",
            "Big",
            "--dial-type",
            "Progressive",
        )
        cli(env, "campaign", "start", "--username", "bench", "--name", "Big")
        started = time.perf_counter()
        if args.backend == "sqlite":
            load_sqlite(work / "bench.db", 1, args.leads)
        else:
            asyncio.run(load_postgres(url, 1, args.leads))
        print(f"loaded {args.leads:,} leads in {time.perf_counter() - started:.0f} s", flush=True)
        counts_ms = counts_query_ms(args.backend, url, work / "bench.db")
        print(f"the counts query alone: {counts_ms} ms (median of 5)", flush=True)
        proc = subprocess.Popen(
            [str(DIALBASE), "serve", "--port", str(args.port), "--workers", "1"],
            env=env,
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{args.port}"
        wait_ready(base, proc)
        deep = f"i{args.leads * 9 // 10}"
        pages = {
            "campaigns": "/console/campaigns",
            "campaign": "/console/campaigns/1",
            "counts (live fragment)": "/console/campaigns/1/counts",
            "forecast (fragment)": "/console/campaigns/1/forecast",
            "settings": "/console/campaigns/1/settings",
            "leads": "/console/campaigns/1/leads",
            "leads, page at 90%": f"/console/campaigns/1/leads?after={deep}",
            "leads, state retry": "/console/campaigns/1/leads?state=retry",
            "leads, number search": "/console/campaigns/1/leads?q=9800500000",
            "leads, name search": "/console/campaigns/1/leads?q=Person+77",
            "lead detail": f"/console/campaigns/1/leads/{args.leads // 2}",
            "do-not-call": "/console/dnc",
            "account": "/console/account",
        }
        results = asyncio.run(measure(base, pages, args.requests, args.browsers))
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"console-{args.backend}.json"
        out.write_text(
            json.dumps(
                {
                    "leads": args.leads,
                    "browsers": args.browsers,
                    "counts_query_ms": counts_ms,
                    "pages": results,
                },
                indent=2,
            )
        )
        print(f"written {out.relative_to(ROOT)}")
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        if database:
            subprocess.run(["psql", PG_ADMIN, "-qc", f'DROP DATABASE "{database}" WITH (FORCE)'])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
