#!/usr/bin/env python3
"""Lease benchmark: dialbase's /v1 dialer API vs a minimal reference app under the same wrk load.

    bench/lease [--backend sqlite|postgres|both] [--workload a,b,c] [--duration 10] [--runs 3]
    bench/lease --sizes 10000,1000000      # dialbase only: lease cost against queue size

Workloads (bench/lease.lua): (a) lease one lead per request, 16 connections; (b) lease,
then report the lease's outcome (no_answer half the time, retried 1 s later), 16
connections; (c) as (a) with 64 connections. Both apps run on a copy of the same
database, migrated and seeded by dialbase (a running campaign with --pending leads);
their runs alternate. The server is pinned to CPU 0 and wrk to CPU 1. Prints a markdown
table and writes bench/results/lease-<time>.md.
"""

import argparse
import asyncio
import base64
import functools
import os
import random
import shlex
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
from benchlib import (
    ACCOUNT_LIMIT,
    API_KEY,
    BENCH,
    DIALBASE,
    DIALBASE_CMD,
    PG_URL,
    PYTHON,
    RESULTS,
    ROOT,
    SERVER_ENV,
    die,
    ensure_wrk,
    environment,
    free_port,
    fresh_database,
    profile,
    psql,
    running_server,
    warn_if_busy,
    wrk,
)
from lease_reference_app import PG_PICK, SQLITE_FORMAT, statements

LUA = BENCH / "lease.lua"
REFERENCE_CMD = "{python} bench/lease_reference_app.py --port {port} --database-url {url}"
USER, CAMPAIGN, MAX_ATTEMPTS = "bench000", "Bench", 3
# Size mode: a lease lapses after a second and its lead is due again at once (up to 100
# attempts), so a queue of 10,000 never runs dry: it holds about size - leases/s pending.
SIZE_LEASE_SECONDS, SIZE_MAX_ATTEMPTS = 1, 100
CITIES = ("Pune", "Mumbai", "Delhi", "Chennai", "Kolkata", "Jaipur")


@dataclass(frozen=True)
class Workload:
    name: str
    mode: str  # lease.lua's MODE: lease or cycle
    connections: int
    what: str
    lease_seconds: int = 300


WORKLOADS = {
    "a": Workload("a", "lease", 16, "lease 1 lead per request"),
    "b": Workload("b", "cycle", 16, "lease, then report its outcome (req/s counts both)"),
    "c": Workload("c", "lease", 64, "lease 1 lead per request"),
}


@dataclass(frozen=True)
class Contender:
    """One server of a comparison: its label, command template and seeded database."""

    label: str
    app: str  # reference or dialbase
    cmd: str
    template_url: str


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--workload", default="a,b,c", help="comma-separated: a, b and/or c")
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    ap.add_argument("--runs", type=int, default=3, help="measured runs per app (median reported)")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per app")
    ap.add_argument("--connections", type=int, help="override the workloads' 16/16/64")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (1 or 2)")
    ap.add_argument("--pending", type=int, default=200_000, help="pending leads at the start")
    ap.add_argument("--retry-delay", type=int, default=1, help="the campaign's, in seconds")
    ap.add_argument(
        "--sizes",
        help="size mode: workload a against dialbase only, at each of these queue sizes "
        "(e.g. 10000,1000000); reports the large/small ratios",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="one extra dialbase run per workload under py-spy; "
        "writes results/profile-lease-<backend>-<workload>*.txt",
    )
    ap.add_argument(
        "--dialbase-cmd",
        default=os.environ.get("BENCH_DIALBASE_CMD", DIALBASE_CMD),
        help="testing only: server command template instead of 'dialbase serve' "
        "(fields {python} {dialbase} {port} {url})",
    )
    args = ap.parse_args()
    args.workloads = [w.strip() for w in args.workload.split(",") if w.strip()]
    if not args.workloads or any(w not in WORKLOADS for w in args.workloads):
        ap.error(f"--workload takes a comma-separated list of {', '.join(WORKLOADS)}")
    if args.sizes:
        args.size_list = sorted({int(s) for s in args.sizes.replace("_", "").split(",")})
        if len(args.size_list) < 2:
            ap.error("--sizes takes at least two queue sizes")
    return args


# --- the seeded database -------------------------------------------------------------


async def _setup_dialbase(url: str, retry_delay: int, max_attempts: int) -> int:
    """Migrate; create the account and its running campaign through dialbase's services."""
    from dialbase.accounts.service import create_account
    from dialbase.campaigns.service import create_campaign, set_running, update_campaign
    from dialbase.config import Settings
    from dialbase.db import create_engine, make_sessionmaker, session_scope
    from dialbase.migrate import upgrade

    engine = create_engine(Settings(database_url=url))
    try:
        await upgrade(engine)
        async with session_scope(make_sessionmaker(engine)) as session:
            await create_account(session, USER, api_key=API_KEY, rate_limit=ACCOUNT_LIMIT)
            await create_campaign(session, USER, CAMPAIGN, dial_type="Progressive")
            campaign = await update_campaign(
                session, USER, CAMPAIGN, max_attempts=max_attempts, retry_delay=retry_delay
            )
            await set_running(session, campaign, True)
            return campaign.id
    finally:
        await engine.dispose()


def lead_rows(campaign_id: int, pending: int):
    """Pending leads: priorities 1..5 at random, due one millisecond apart in the past,
    a third with an extra column."""
    rnd = random.Random(pending)
    start = datetime.now(UTC) - timedelta(milliseconds=pending, hours=1)
    for n in range(pending):
        at = (start + timedelta(milliseconds=n)).strftime(SQLITE_FORMAT)
        extra = f'{{"city":"{CITIES[n % 6]}"}}' if n % 3 == 0 else "{}"
        yield (campaign_id, f"9{n:09d}", f"Lead {n}", rnd.randint(1, 5), extra, at, at)


def fill_sqlite(url: str, campaign_id: int, pending: int) -> None:
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    with db:
        db.executemany(
            "INSERT INTO leads (campaign_id, phone_number, name, priority, extra, status,"
            " attempts, due_at, created_at) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
            lead_rows(campaign_id, pending),
        )
    db.execute("ANALYZE")
    db.close()


async def fill_postgres(url: str, campaign_id: int, pending: int) -> None:
    """The same leads as lead_rows, generated by the server (priorities from random())."""
    db = await asyncpg.connect(url)
    try:
        await db.execute("SELECT setseed(0.42)")
        await db.execute(
            """
            INSERT INTO leads (campaign_id, phone_number, name, priority, extra, status,
                               attempts, due_at, created_at)
            SELECT $1, '9' || lpad(g::text, 9, '0'), 'Lead ' || g, 1 + floor(random() * 5),
                   CASE WHEN g % 3 = 0 THEN json_build_object('city',
                       (ARRAY['Pune','Mumbai','Delhi','Chennai','Kolkata','Jaipur'])[g % 6 + 1])
                   ELSE '{}'::json END, 'pending', 0, t, t
            FROM generate_series(0, $2 - 1) AS g,
                 LATERAL (SELECT now() - interval '1 hour'
                          - make_interval(secs => (($2 - g) / 1000.0)::float8) AS t) AS at
            """,
            campaign_id,
            pending,
        )
        await db.execute("VACUUM ANALYZE leads")
    finally:
        await db.close()


async def query_plan(backend: str, url: str, campaign_id: int) -> str:
    """How the reference app picks a lead: it must use ix_leads_queue, as dialbase does."""
    now = datetime.now(UTC)
    if backend == "sqlite":
        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        sql = "EXPLAIN QUERY PLAN " + statements("sqlite")["DUE"]
        rows = db.execute(sql, (campaign_id, now.strftime(SQLITE_FORMAT), 1)).fetchall()
        db.close()
        return "\n".join(row[-1] for row in rows)
    db = await asyncpg.connect(url)
    try:
        rows = await db.fetch("EXPLAIN " + PG_PICK, campaign_id, now, 1, now)
    finally:
        await db.close()
    return "\n".join(row[0] for row in rows)


@contextmanager
def seeded_database(backend: str, pending: int, retry_delay: int, max_attempts=MAX_ATTEMPTS):
    """A database migrated by dialbase holding the bench campaign with ``pending`` leads,
    the template every app's copy is made from; yields (url, query plan)."""
    with fresh_database(backend, f"template_{pending}") as url:
        began = time.monotonic()
        campaign_id = asyncio.run(_setup_dialbase(url, retry_delay, max_attempts))
        if backend == "sqlite":
            fill_sqlite(url, campaign_id, pending)
        else:
            asyncio.run(fill_postgres(url, campaign_id, pending))
        plan = asyncio.run(query_plan(backend, url, campaign_id))
        took = time.monotonic() - began
        print(f"{backend:8} seeded {pending:,} pending leads in {took:.1f} s", flush=True)
        yield url, plan


@contextmanager
def database_copy(template_url: str, tag: str):
    """A copy of a seeded database, deleted afterwards: every app starts from the same queue."""
    if template_url.startswith("sqlite:"):
        folder = tempfile.mkdtemp(prefix="dialbase-bench-")
        try:
            path = f"{folder}/{tag}.db"
            shutil.copyfile(template_url.removeprefix("sqlite:///"), path)
            yield f"sqlite:///{path}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    template = template_url.rsplit("/", 1)[1]
    name = f"dialbase_bench_{os.getpid()}_{tag}"
    psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    psql(f"CREATE DATABASE {name} TEMPLATE {template}")
    try:
        yield PG_URL.format(name)
    finally:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- load ----------------------------------------------------------------------------


def authorization() -> str:
    return "Basic " + base64.b64encode(f"{USER}:{API_KEY}".encode()).decode()


def load(port: int, seconds: int, workload: Workload, args) -> dict:
    conns = args.connections or workload.connections
    wrk_args = [workload.mode, authorization(), CAMPAIGN, workload.lease_seconds]
    result = wrk(port, seconds, LUA, "/", wrk_args, connections=conns, threads=args.threads)
    result["leases_per_s"] = result["leased"] / (result["duration_us"] / 1e6)
    return result


def show_run(label: str, i: int, r: dict) -> dict:
    print(
        f"{label:30} run {i}: {r['rps']:7.0f} req/s {r['leases_per_s']:7.0f} leases/s"
        f"  p50 {r['p50_us'] / 1000:6.2f} ms  p99 {r['p99_us'] / 1000:6.2f} ms"
        f"  retried {r['retried']}  empty {r['empty']}  status {r['status']}",
        flush=True,
    )
    return r


# After the runs: a (lead, attempt) leased twice, or two leases of one lead that held it at
# the same time (a lease holds its lead until reported, or until its deadline).
_TWICE = """
SELECT (SELECT count(*) FROM (SELECT lead_id, attempt FROM leases
                              GROUP BY lead_id, attempt HAVING count(*) > 1) AS d)
     + (SELECT count(*) FROM leases a JOIN leases b ON a.lead_id = b.lead_id AND a.id < b.id
        WHERE a.leased_at < COALESCE(b.reported_at, b.deadline)
          AND b.leased_at < COALESCE(a.reported_at, a.deadline))
"""


def leased_twice(url: str) -> int:
    """How many hand-outs broke exactly-once in the database at ``url`` (0 when none)."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            return int(db.execute(_TWICE).fetchone()[0])

    async def count() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval(_TWICE))
        finally:
            await conn.close()

    return asyncio.run(count())


def compare(args, backend: str, workload: Workload, contenders: list) -> list:
    """Start every contender on its own copy, warm each up, then alternate their runs."""
    runs: dict[str, list] = {c.label: [] for c in contenders}
    twice: dict[str, int] = {}
    with ExitStack() as stack:
        servers, urls = [], []
        for n, c in enumerate(contenders):
            url = stack.enter_context(database_copy(c.template_url, f"{c.app}{n}"))
            urls.append(url)
            port = free_port()
            cmd = c.cmd.format(python=PYTHON, dialbase=DIALBASE, port=port, url=url)
            env = {**SERVER_ENV, "DIALBASE_DATABASE_URL": url}
            servers.append(stack.enter_context(running_server(shlex.split(cmd), env, port)))
        for server in servers:
            load(server.port, args.warmup, workload, args)
        for i in range(1, args.runs + 1):
            for c, server in zip(contenders, servers, strict=True):
                runs[c.label].append(
                    show_run(c.label, i, load(server.port, args.duration, workload, args))
                )
        if args.profile:
            for c, server in zip(contenders, servers, strict=True):
                if c.app == "dialbase":
                    run_once = functools.partial(load, server.port, args.duration, workload, args)
                    profile(server.pid, run_once, f"profile-lease-{backend}-{workload.name}")
        for c, url in zip(contenders, urls, strict=True):
            twice[c.label] = leased_twice(url)
    conns = args.connections or workload.connections
    rows = [summarize(backend, workload.name, conns, c, runs[c.label]) for c in contenders]
    for row in rows:
        row["leased_twice"] = twice[row["label"]]
    return rows


def summarize(backend: str, workload: str, conns: int, c: Contender, runs: list) -> dict:
    def median(key):
        return statistics.median(r[key] for r in runs)

    def total(key):
        return sum(r[key] for r in runs)

    return {
        "backend": backend,
        "workload": workload,
        "connections": conns,
        "app": c.app,
        "label": c.label,
        "rps": median("rps"),
        "leases_per_s": median("leases_per_s"),
        "p50_ms": median("p50_us") / 1000,
        "p99_ms": median("p99_us") / 1000,
        "requests": total("requests"),
        "leased": total("leased"),
        "retried": total("retried"),
        "reported": total("reported"),
        "empty": total("empty"),
        "non_2xx": total("non_2xx"),
        "socket_errors": total("socket_errors"),
        "runs": runs,
    }


# --- the two modes -------------------------------------------------------------------


def versus(args, backend: str, plans: dict) -> list:
    """Each workload: dialbase and the reference, each on a copy of one seeded database."""
    rows = []
    with seeded_database(backend, args.pending, args.retry_delay) as (url, plan):
        plans[backend] = plan
        for name in args.workloads:
            contenders = [
                Contender(f"{backend} {name} reference", "reference", REFERENCE_CMD, url),
                Contender(f"{backend} {name} dialbase", "dialbase", args.dialbase_cmd, url),
            ]
            rows += compare(args, backend, WORKLOADS[name], contenders)
    for r in rows:
        ref = next(x for x in rows if x["workload"] == r["workload"] and x["app"] == "reference")
        if r["app"] == "dialbase" and ref["rps"]:
            r["ratio"] = r["rps"] / ref["rps"]
    return rows


def sizes(args, backend: str, plans: dict) -> list:
    """Workload a against dialbase on queues of each size, runs alternating between them."""
    with ExitStack() as stack:
        contenders = []
        for size in args.size_list:
            url, plans[f"{backend} {size}"] = stack.enter_context(
                seeded_database(backend, size, args.retry_delay, SIZE_MAX_ATTEMPTS)
            )
            contenders.append(
                Contender(f"{backend} {size:,} pending", "dialbase", args.dialbase_cmd, url)
            )
        workload = replace(WORKLOADS["a"], lease_seconds=SIZE_LEASE_SECONDS)
        rows = compare(args, backend, workload, contenders)
    for size, r in zip(args.size_list, rows, strict=True):
        r["pending"] = size
        r["p50_ratio"] = r["p50_ms"] / rows[0]["p50_ms"]
        r["rps_ratio"] = r["rps"] / rows[0]["rps"]
    return rows


def table(rows: list, size_mode: bool) -> str:
    if size_mode:
        head = ["backend", "pending", "req/s", "p50 ms", "p99 ms", "non-2xx", "empty"]
        head += ["twice", "p50 / smallest", "req/s / smallest"]
    else:
        head = ["backend", "workload", "conns", "app", "req/s", "leases/s", "p50 ms", "p99 ms"]
        head += ["non-2xx", "empty", "twice", "dialbase/reference"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if size_mode:
            cells = [r["backend"], f"{r['pending']:,}", f"{r['rps']:.0f}"]
        else:
            cells = [r["backend"], r["workload"], r["connections"], r["app"], f"{r['rps']:.0f}"]
            cells.append(f"{r['leases_per_s']:.0f}")
        cells += [f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", r["non_2xx"], r["empty"]]
        cells.append(r["leased_twice"])
        if size_mode:
            cells += [f"{r['p50_ratio']:.2f}", f"{r['rps_ratio']:.2f}"]
        else:
            cells.append(f"{r['ratio']:.2f}" if "ratio" in r else "")
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def write_results(args, rows: list, text: str, plans: dict, took: float) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    env = environment(args, stand_in=args.dialbase_cmd != DIALBASE_CMD)
    env["seconds_total"] = round(took)
    note = (
        "\n\n**dialbase replaced by a stand-in (`--dialbase-cmd`): not a dialbase result.**"
        if env["dialbase_stand_in"]
        else ""
    )
    data = {"environment": env, "results": rows, "reference_query_plans": plans}
    path = RESULTS / f"lease-{stamp}.md"
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# Lease benchmark {stamp} UTC\n\n`{env['command']}` on {env['cpu']} "
        f"({env['cpus']} CPUs){note}\n\n{text}\n\n```json\n"
        f"{orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()}\n```\n"
    )
    return str(path.relative_to(ROOT))


def describe(args) -> str:
    if args.sizes:
        return (
            f"Size mode: workload a ({WORKLOADS['a'].what}, {args.connections or 16} "
            f"connections) against dialbase only, runs alternating between the queue sizes. "
            f"Leases of {SIZE_LEASE_SECONDS} s, up to {SIZE_MAX_ATTEMPTS} attempts: a lapsed "
            "lease's lead is due again at once, so the queues never run dry. Medians of "
            f"{args.runs} {args.duration} s runs."
        )
    lines = [f"Queue: {args.pending:,} pending leads; retry delay {args.retry_delay} s."]
    for name in args.workloads:
        w = WORKLOADS[name]
        lines.append(f"({name}) {w.what}, {args.connections or w.connections} connections.")
    return " ".join(lines) + (
        f" Medians of {args.runs} alternating {args.duration} s runs per app; p50/p99 over"
        " every request (leases and outcome reports in b); non-2xx and empty (a lease"
        " answer without a lead: the queue ran dry) are totals; twice counts, in the"
        " database after the runs, (lead, attempt) pairs leased more than once and pairs of"
        " leases holding one lead at the same time (exactly-once: 0)."
    )


def main() -> None:
    args = parse_args()
    ensure_wrk()
    if not DIALBASE.exists():
        die(f"{DIALBASE} not found: install dialbase into the venv (pip install -e .)")
    warn_if_busy(args)
    began = time.monotonic()
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    mode = sizes if args.sizes else versus
    rows, plans = [], {}
    for backend in backends:
        rows += mode(args, backend, plans)
    if any(r["leased_twice"] for r in rows):
        print("bench: EXACTLY-ONCE BROKEN: see the 'twice' column", file=sys.stderr)
    if any(r["empty"] for r in rows):
        print("bench: warning: some lease answers had no lead: raise --pending", file=sys.stderr)
    text = describe(args) + "\n\n" + table(rows, bool(args.sizes))
    took = time.monotonic() - began
    print(f"\n{text}\n\nresults: {write_results(args, rows, text, plans, took)} ({took:.0f} s)")


if __name__ == "__main__":
    main()
