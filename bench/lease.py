"""Leasing cost versus queue size: one lead from a campaign of 10,000 vs 1,000,000 pending.

For each backend and size: a fresh database (migrated), one running campaign filled with
``size`` pending leads (priorities 1..5, one second apart), ANALYZE, then ``--leases``
single-lead leases through ``dialer.service.lease`` in their own transactions (the same
code path as ``POST /v1/campaigns/{c}/leases``, without HTTP). Reports the median and
p95 per lease, the ratio large/small, and the plan of the queue query.

    .venv/bin/python bench/lease.py                      # sqlite and postgres, 10k and 1M
    .venv/bin/python bench/lease.py --backends sqlite --sizes 10000,100000

Writes bench/results/lease-<UTC timestamp>.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from dialbase.accounts.service import create_account, get_account
from dialbase.campaigns.service import create_campaign, get_campaign, set_running
from dialbase.config import Settings
from dialbase.db import create_engine, make_sessionmaker, session_scope, sqlite_instant
from dialbase.dialer import service
from dialbase.dialer.queue import due_leads, expire, wake
from dialbase.migrate import upgrade

RESULTS = Path(__file__).resolve().parent / "results"
PG_SERVER = os.environ.get(
    "DIALBASE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CHUNK = 50_000


def pg_url(database: str) -> str:
    return make_url(PG_SERVER).set(database=database).render_as_string(hide_password=False)


async def pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(pg_url("postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def prepare(url: str) -> int:
    """Migrate, create the account and a running campaign; its id."""
    engine = create_engine(Settings(database_url=url))
    await upgrade(engine)
    async with session_scope(make_sessionmaker(engine)) as session:
        await create_account(session, "bench", api_key="bench-secret-key")
        campaign = await create_campaign(session, "bench", "Bench", dial_type="Progressive")
        await set_running(session, campaign, True)
        campaign_id = campaign.id
    await engine.dispose()
    return campaign_id


def fill_sqlite(path: str, campaign_id: int, size: int) -> None:
    start = datetime.now(UTC) - timedelta(seconds=size + 60)
    conn = sqlite3.connect(path)
    sql = (
        "INSERT INTO leads (campaign_id, phone_number, priority, extra, status, attempts,"
        " due_at, created_at) VALUES (?, ?, ?, '{}', 'pending', 0, ?, ?)"
    )
    for first in range(0, size, CHUNK):
        rows = []
        for n in range(first, min(first + CHUNK, size)):
            at = sqlite_instant(start + timedelta(seconds=n))
            rows.append((campaign_id, f"9{n:09d}", 1 + n * 7 % 5, at, at))
        conn.executemany(sql, rows)
        conn.commit()
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()


async def fill_postgres(url: str, campaign_id: int, size: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            INSERT INTO leads (campaign_id, phone_number, priority, extra, status, attempts,
                               due_at, created_at)
            SELECT $1, '9' || lpad(g::text, 9, '0'), 1 + (g * 7) % 5, '{}', 'pending', 0,
                   now() - make_interval(secs => $2 + 60 - g),
                   now() - make_interval(secs => $2 + 60 - g)
            FROM generate_series(0, $2 - 1) AS g
            """,
            campaign_id,
            size,
        )
        await conn.execute("VACUUM ANALYZE leads")
    finally:
        await conn.close()


async def time_leases(url: str, leases: int, warmup: int) -> list[float]:
    """Seconds per lease, after ``warmup`` leases (connections and caches warm)."""
    engine = create_engine(Settings(database_url=url))
    sessions = make_sessionmaker(engine)
    timings: list[float] = []
    for n in range(warmup + leases):
        began = time.perf_counter()
        async with session_scope(sessions) as session:
            account = await get_account(session, "bench")
            got = await service.lease(session, account, "Bench", count=1)
        if n >= warmup:
            timings.append(time.perf_counter() - began)
        assert len(got) == 1, "the campaign ran out of leads"
    await engine.dispose()
    return timings


async def explain(url: str) -> str:
    """The plans of a lease's three queue statements: wake, expire, pick the due lead."""
    engine = create_engine(Settings(database_url=url))
    plans = []
    async with session_scope(make_sessionmaker(engine)) as session:
        campaign = await get_campaign(session, "bench", "Bench")
        now = datetime.now(UTC)
        dialect = session.get_bind().dialect
        prefix = "EXPLAIN QUERY PLAN " if dialect.name == "sqlite" else "EXPLAIN "
        for title, statement in (
            ("wake", wake(campaign, now)),
            ("expire", expire(campaign, now)),
            ("due lead", due_leads(campaign, None, None, now, 1)),
        ):
            sql = statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
            rows = (await session.execute(text(prefix + str(sql)))).all()
            plans.append(f"-- {title}\n" + "\n".join(str(row[-1]) for row in rows))
        await session.rollback()
    await engine.dispose()
    return "\n".join(plans)


async def create(backend: str, size: int, folder: Path) -> str:
    """A database holding one running campaign with ``size`` pending leads; its URL."""
    if backend == "sqlite":
        path = str(folder / f"lease-{size}.db")
        campaign_id = await prepare(f"sqlite:///{path}")
        fill_sqlite(path, campaign_id, size)
        return f"sqlite:///{path}"
    name = f"dialbase_bench_lease_{size}"
    await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await pg_admin(f'CREATE DATABASE "{name}"')
    campaign_id = await prepare(pg_url(name))
    await fill_postgres(pg_url(name), campaign_id, size)
    return pg_url(name)


async def drop(url: str) -> None:
    if url.startswith("postgresql"):
        await pg_admin(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


async def measure(
    backend: str, sizes: list[int], args: argparse.Namespace, folder: Path
) -> list[dict]:
    """Rounds alternate between the sizes, so that drift in machine load hits both alike."""
    urls = {}
    for size in sizes:
        print(f"bench: {backend}: filling a campaign with {size:,} pending leads ...", flush=True)
        urls[size] = await create(backend, size, folder)
    timings: dict[int, list[float]] = {size: [] for size in sizes}
    try:
        for round_ in range(args.rounds):
            for size in sizes:
                leases = args.leases // args.rounds
                timings[size] += await time_leases(urls[size], leases, args.warmup)
            print(f"bench: {backend}: round {round_ + 1}/{args.rounds} done", flush=True)
        plans = {size: await explain(urls[size]) for size in sizes}
    finally:
        for url in urls.values():
            await drop(url)
    return [_row(backend, size, timings[size], plans[size]) for size in sizes]


def _row(backend: str, size: int, timings: list[float], plan: str) -> dict:
    ms = sorted(t * 1000 for t in timings)
    return {
        "backend": backend,
        "size": size,
        "leases": len(ms),
        "median": statistics.median(ms),
        "p95": ms[max(int(len(ms) * 0.95) - 1, 0)],
        "plan": plan,
    }


def report(results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"# Lease benchmark {datetime.now(UTC):%Y%m%d-%H%M%S} UTC",
        "",
        f"`bench/lease.py {' '.join(args.argv)}` on {platform.processor() or platform.machine()}"
        f" ({os.cpu_count()} CPUs), load average {os.getloadavg()[0]:.2f} at the end,"
        f" git {git_commit()}",
        "",
        f"One lead leased per transaction; {args.rounds} alternating rounds per size, each"
        f" {args.leases // args.rounds} timed leases after {args.warmup} warm-up ones.",
        "",
        "| backend | pending leads | median ms | p95 ms | median / smallest size |",
        "|---|---|---|---|---|",
    ]
    smallest: dict[str, float] = {}
    for row in results:
        base = smallest.setdefault(row["backend"], row["median"])
        lines.append(
            f"| {row['backend']} | {row['size']:,} | {row['median']:.2f} | {row['p95']:.2f}"
            f" | {row['median'] / base:.2f} |"
        )
    for row in results:
        lines += ["", f"Plans, {row['backend']}, {row['size']:,} pending leads:", ""]
        lines += ["```", row["plan"], "```"]
    return "\n".join(lines) + "\n"


def git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


async def main(args: argparse.Namespace) -> None:
    sizes = sorted(int(s) for s in args.sizes.split(","))
    results = []
    with tempfile.TemporaryDirectory(prefix="dialbase-lease-") as folder:
        for backend in args.backends.split(","):
            rows = await measure(backend, sizes, args, Path(folder))
            for row in rows:
                print(f"  {backend} {row['size']:,}: median {row['median']:.2f} ms", flush=True)
            results += rows
    text_out = report(results, args)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"lease-{datetime.now(UTC):%Y%m%d-%H%M%S}.md"
    out.write_text(text_out)
    print(text_out)
    print(f"bench: written to {out}")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--leases", type=int, default=500, help="timed leases per size")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=10, help="untimed leases per round")
    args = parser.parse_args()
    args.argv = sys.argv[1:]
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
