#!/usr/bin/env python3
"""File import benchmark: a CSV of N leads through `dialbase leads import` and the HTTP upload,
against a bare bulk insert of the same rows.

    bench/import [--rows 1000000] [--backend sqlite|postgres|both] [--skip cli,http,bare]
    bench/import --rows 100000                     # a short run

The file: PhoneNumber, Name, Priority, ExpiryDate and two extra columns (Region, Score);
1% of the rows have a number that is not one (rejected), every other number is distinct.
Each way gets a fresh database (migrated, one account, campaign "Bench"):

- cli:  `dialbase leads import --check-duplicate FILE` as a process; wall time from start to
        exit; peak RSS of that process (sampled every 0.2 s).
- http: one `dialbase serve` worker; the file POSTed to /v1/campaigns/Bench/imports
        (checkDuplicate=true), then GET /v1/imports/{id} polled until done; wall time from
        the first byte sent to done (and to the 202 alone); peak RSS of the server.
        With --lease, a client leases (and reports) one lead at a time during the import
        and the lease latencies' p50/p99 are recorded.
- bulk: the file's rows as 500-row requests of the bulk endpoint, in this process: each
        staged in one transaction (``imports.service.queue_rows``, as the endpoint does
        before it answers) and then added by the import engine (``run_import``). Leaves
        out HTTP and the endpoint's limit of 5 requests a minute per account.
- checks: the file read and every row checked (``imports.rows.judge``, the code an import
        runs per row: phone number parsing and zones, priority, expiry, routing), in this
        process, writing nothing: the ceiling of an import on one core.
- bare: the good rows already parsed in memory, inserted into the same `leads` table (its
        indexes in place) in one transaction: sqlite3 `executemany` / asyncpg `COPY`. A
        floor: no checks, no duplicate guard, no results, no zones.

rows/s counts every row of the file (rejected ones too) for cli and http, the inserted rows
for bare. Prints a table and writes bench/results/import-<time>.md.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from benchlib import (
    API_KEY,
    DIALBASE,
    DIALBASE_CMD,
    PYTHON,
    RESULTS,
    SERVER_ENV,
    dialbase_setup,
    free_port,
    fresh_database,
    running_server,
    warn_if_busy,
)
from memory import RssSampler

USER = "bench000"
CAMPAIGN = "Bench"
WAYS = ("cli", "http", "bulk", "checks", "bare")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="data rows in the file")
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="sqlite")
    ap.add_argument("--skip", default="", help="comma-separated: cli, http, bulk, checks, bare")
    ap.add_argument("--lease", action="store_true", help="lease latency during the HTTP import")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per import, at most")
    ap.add_argument("--suffix", default="", help="appended to the results file's name")
    args = ap.parse_args()
    args.ways = [w for w in WAYS if w not in {s.strip() for s in args.skip.split(",") if s}]
    return args


def write_csv(path: Path, rows: int) -> int:
    """The benchmark file; the number of rows that are bad."""
    rng = random.Random(12)
    bad = 0
    expiry = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d %H:%M:%S")
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["PhoneNumber", "Name", "Priority", "ExpiryDate", "Region", "Score"])
        for i in range(rows):
            if i % 100 == 99:
                number, bad = f"x{i}", bad + 1
            else:
                number = f"+9198{i:08d}"
            region = ("north", "south", "east", "west")[i % 4]
            writer.writerow([number, f"Lead {i}", 1 + i % 5, expiry, region, rng.randint(0, 1000)])
    return bad


def good_rows(path: Path) -> list[tuple]:
    with path.open(newline="") as src:
        reader = csv.reader(src)
        next(reader)
        return [r for r in reader if r[0].startswith("+")]


def peak_mb(sampler: RssSampler) -> float:
    return max(sampler.samples) / 1024


def import_cli(url: str, path: Path, args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="dialbase-bench-import-"))
    env = {**os.environ, "DIALBASE_DATABASE_URL": url, "DIALBASE_IMPORT_DIR": str(work)}
    cmd = [DIALBASE, "leads", "import", "--username", USER, "--campaign", CAMPAIGN]
    cmd += ["--check-duplicate", path]
    started = time.monotonic()
    proc = subprocess.Popen([str(c) for c in cmd], env=env, stdout=subprocess.PIPE, text=True)
    sampler = RssSampler(proc.pid, 0.2)
    sampler.start()
    out, _ = proc.communicate(timeout=args.timeout)
    seconds = time.monotonic() - started
    sampler.stop()
    if proc.returncode not in (0, 1):
        sys.exit(f"bench: dialbase leads import exited {proc.returncode}: {out}")
    print(f"  cli: {out.strip()}", flush=True)
    return {"seconds": seconds, "rows_per_s": args.rows / seconds, "peak_rss_mb": peak_mb(sampler)}


def _stop_event_thread(target, *a) -> tuple[threading.Event, threading.Thread, list]:
    stop, found = threading.Event(), []
    thread = threading.Thread(target=target, args=(*a, stop, found), daemon=True)
    thread.start()
    return stop, thread, found


def _lease_loop(base: str, stop: threading.Event, found: list) -> None:
    """Lease one lead and report it, again and again; every lease's latency (s)."""
    with httpx.Client(base_url=base, auth=(USER, API_KEY), timeout=30) as client:
        while not stop.is_set():
            started = time.perf_counter()
            response = client.post(f"/v1/campaigns/{CAMPAIGN}/leases", json={"count": 1})
            found.append(time.perf_counter() - started)
            leases = response.json().get("leases", []) if response.status_code == 200 else []
            for lease in leases:
                client.post(f"/v1/leases/{lease['leaseId']}/outcome", json={"outcome": "busy"})
            if not leases:
                time.sleep(0.01)


def import_http(url: str, path: Path, args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="dialbase-bench-import-"))
    port = free_port()
    cmd = shlex.split(DIALBASE_CMD.format(python=PYTHON, dialbase=DIALBASE, port=port, url=url))
    env = {**SERVER_ENV, "DIALBASE_DATABASE_URL": url, "DIALBASE_IMPORT_DIR": str(work)}
    with running_server(cmd, env, port) as server:
        base = f"http://127.0.0.1:{port}"
        sampler = RssSampler(server.pid, 0.2)
        sampler.start()
        if args.lease:
            httpx.post(f"{base}/v1/campaigns/{CAMPAIGN}/start", auth=(USER, API_KEY), timeout=30)
            stop, thread, latencies = _stop_event_thread(_lease_loop, base)
        with httpx.Client(base_url=base, auth=(USER, API_KEY), timeout=args.timeout) as client:
            started = time.monotonic()
            with path.open("rb") as upload:
                response = client.post(
                    f"/v1/campaigns/{CAMPAIGN}/imports",
                    files={"file": (path.name, upload, "text/csv")},
                    data={"checkDuplicate": "true"},
                )
            queued = time.monotonic() - started
            if response.status_code != 202:
                sys.exit(f"bench: upload answered {response.status_code}: {response.text[:300]}")
            location = response.headers["location"]
            while True:
                view = client.get(location, params={"limit": 0}).json()
                if view["status"] == "done" or time.monotonic() - started > args.timeout:
                    break
                time.sleep(0.1)
            seconds = time.monotonic() - started
        sampler.stop()
        result = {
            "seconds": seconds,
            "rows_per_s": args.rows / seconds,
            "peak_rss_mb": peak_mb(sampler),
            "queued_after_s": queued,
            "added": view["added"],
            "rejected": view["rejected"],
        }
        print(f"  http: {view['status']}: {view['added']} added, {view['rejected']} rejected")
        if args.lease:
            stop.set()
            thread.join(30)
            result.update(_percentiles(latencies))
    return result


def _percentiles(latencies: list) -> dict:
    if not latencies:
        return {}
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"leases": len(ordered), "lease_p50_ms": at(0.5), "lease_p99_ms": at(0.99)}


def _lead_values(rows: list, campaign_id: int, now, stamp) -> list[tuple]:
    """The leads columns of each good row; ``stamp`` turns a UTC instant into the driver's
    value (text on SQLite, as SQLAlchemy stores it; aware datetimes for asyncpg)."""
    values = []
    for number, name, priority, expiry, region, score in rows:
        expires = stamp(datetime.strptime(expiry, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC))
        extra = json.dumps({"Region": region, "Score": score})
        values.append(
            (campaign_id, number, number, name, int(priority), expires, extra, "pending", 0)
            + (now, now)
        )
    return values


COLUMNS = (
    "campaign_id, phone_number, phone_e164, name, priority, expires_at, extra, status,"
    " attempts, due_at, created_at"
)


def bare_sqlite(url: str, rows: list) -> float:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    campaign_id = conn.execute("SELECT id FROM campaigns").fetchone()[0]

    def stamp(instant: datetime) -> str:
        return instant.replace(tzinfo=None).isoformat(" ", "microseconds")

    values = _lead_values(rows, campaign_id, stamp(datetime.now(UTC)), stamp)
    started = time.monotonic()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(f"INSERT INTO leads ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)", values)
    conn.execute("COMMIT")
    seconds = time.monotonic() - started
    conn.close()
    return seconds


async def bare_postgres(url: str, rows: list) -> float:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        campaign_id = await conn.fetchval("SELECT id FROM campaigns")
        records = _lead_values(rows, campaign_id, datetime.now(UTC), lambda instant: instant)
        started = time.monotonic()
        async with conn.transaction():
            await conn.copy_records_to_table(
                "leads", records=records, columns=[c.strip() for c in COLUMNS.split(",")]
            )
        return time.monotonic() - started
    finally:
        await conn.close()


def import_bulk(url: str, path: Path, args) -> dict:
    """The file's rows as 500-row bulk requests: staged, then added, one after the other."""
    from sqlalchemy import select

    from dialbase.accounts.models import Account
    from dialbase.campaigns.models import Campaign
    from dialbase.config import Settings
    from dialbase.db import create_engine, make_sessionmaker, session_scope
    from dialbase.imports.files import open_rows
    from dialbase.imports.service import ImportRequest, queue_rows, run_import

    settings = Settings(database_url=url, import_dir=tempfile.mkdtemp(prefix="dialbase-bench-"))
    columns, data = open_rows(path, "csv")
    requests: list[list[list]] = [[]]
    for _, cells in data:
        if len(requests[-1]) == 500:
            requests.append([])
        requests[-1].append(list(cells))

    async def main() -> float:
        engine = create_engine(settings)
        try:
            sessions = make_sessionmaker(engine)
            async with sessions() as session:
                account = await session.scalar(select(Account).where(Account.username == USER))
                campaign = await session.scalar(select(Campaign).where(Campaign.name == CAMPAIGN))
            asked = ImportRequest(account.id, campaign.id, "bulk", columns, True, False)
            started = time.monotonic()
            for rows in requests:
                async with session_scope(sessions) as session:
                    import_id = await queue_rows(session, asked, rows)
                await run_import(sessions, settings, import_id)
            return time.monotonic() - started
        finally:
            await engine.dispose()

    seconds = asyncio.run(main())
    return {"seconds": seconds, "rows_per_s": args.rows / seconds, "requests": len(requests)}


def import_checks(url: str, path: Path, args) -> dict:
    """Read and check every row of the file as an import does, writing nothing."""
    from sqlalchemy import select

    from dialbase.accounts.models import Account
    from dialbase.campaigns.models import Campaign
    from dialbase.compat.directory import account_info, campaign_info
    from dialbase.config import Settings
    from dialbase.db import create_engine, make_sessionmaker
    from dialbase.imports import rows
    from dialbase.imports.engine import limits_of
    from dialbase.imports.files import open_rows

    settings = Settings(database_url=url)

    async def context():  # type: ignore[no-untyped-def]
        engine = create_engine(settings)
        try:
            async with make_sessionmaker(engine)() as session:
                account = await session.scalar(select(Account).where(Account.username == USER))
                campaign = await session.scalar(select(Campaign).where(Campaign.name == CAMPAIGN))
                return account_info(account, 0), campaign_info(campaign, 0)
        finally:
            await engine.dispose()

    account, campaign = asyncio.run(context())
    limits = limits_of(settings)
    started = time.monotonic()
    columns, data = open_rows(path, "csv")
    passed = sum(
        not isinstance(rows.judge(columns, list(cells), account, campaign, limits), rows.Refused)
        for _, cells in data
    )
    seconds = time.monotonic() - started
    return {"seconds": seconds, "rows_per_s": args.rows / seconds, "passed": passed}


def import_bare(url: str, path: Path, backend: str) -> dict:
    rows = good_rows(path)
    if backend == "sqlite":
        seconds = bare_sqlite(url, rows)
    else:
        seconds = asyncio.run(bare_postgres(url, rows))
    return {"seconds": seconds, "rows_per_s": len(rows) / seconds, "inserted": len(rows)}


def run_backend(backend: str, path: Path, args) -> dict:
    results = {}
    for way in args.ways:
        with fresh_database(backend, f"import_{way}") as url:
            dialbase_setup(url)
            print(f"{backend} {way} ...", flush=True)
            if way == "cli":
                results[way] = import_cli(url, path, args)
            elif way == "http":
                results[way] = import_http(url, path, args)
            elif way == "bulk":
                results[way] = import_bulk(url, path, args)
            elif way == "checks":
                results[way] = import_checks(url, path, args)
            else:
                results[way] = import_bare(url, path, backend)
            print(f"  {way}: {json.dumps(results[way], default=round)}", flush=True)
    return results


def report(args, bad: int, size: int, all_results: dict) -> str:
    lines = [
        f"# File import benchmark ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Command: `bench/import {' '.join(sys.argv[1:])}`  ",
        f"File: {args.rows:,} rows ({bad:,} bad), {size / 1e6:.1f} MB; load average at start"
        f" {args.load_average_at_start[0]:.1f}; {os.cpu_count()} CPUs.",
        "",
        "| backend | way | seconds | rows/s | vs bare | vs checks | peak RSS MB | notes |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for backend, results in all_results.items():
        floor = results.get("bare", {}).get("rows_per_s")
        checking = results.get("checks", {}).get("rows_per_s")
        for way, r in results.items():
            ratio = f"{r['rows_per_s'] / floor:.2f}" if floor and way != "bare" else ""
            of_checks = (
                f"{r['rows_per_s'] / checking:.2f}"
                if checking and way in ("cli", "http", "bulk")
                else ""
            )
            rss = f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else ""
            notes = []
            if "queued_after_s" in r:
                notes.append(f"202 after {r['queued_after_s']:.1f} s")
            if "lease_p99_ms" in r:
                notes.append(
                    f"{r['leases']} leases during it: p50 {r['lease_p50_ms']:.1f} ms,"
                    f" p99 {r['lease_p99_ms']:.1f} ms"
                )
            lines.append(
                f"| {backend} | {way} | {r['seconds']:.1f} | {r['rows_per_s']:,.0f} | {ratio}"
                f" | {of_checks} | {rss} | {'; '.join(notes)} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    warn_if_busy(args)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    folder = Path(tempfile.mkdtemp(prefix="dialbase-bench-file-"))
    path = folder / "leads.csv"
    print(f"writing {args.rows:,} rows to {path} ...", flush=True)
    bad = write_csv(path, args.rows)
    all_results = {backend: run_backend(backend, path, args) for backend in backends}
    text = report(args, bad, path.stat().st_size, all_results)
    shutil.rmtree(folder, ignore_errors=True)
    print("\n" + text)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"import-{datetime.now(UTC):%Y%m%d-%H%M%S}{args.suffix}.md"
    out.write_text(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
