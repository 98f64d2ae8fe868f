#!/usr/bin/env python3
"""Lease benchmark: dialbase's /v1 dialer API vs a minimal reference app under the same wrk load.

    bench/lease [--backend sqlite|postgres|both] [--workload a,b,c] [--duration 10] [--runs 3]
    bench/lease --sizes 10000,1000000      # dialbase only: lease cost against queue size
    bench/lease --sizes 10000,1000000 --zones 50 --calling-hours half
    bench/lease --baseline /tmp/before     # an earlier checkout's dialbase vs this one

Workloads (bench/lease.lua): (a) lease one lead per request, 16 connections; (b) lease,
then report the lease's outcome (no_answer half the time, retried 1 s later), 16
connections; (c) as (a) with 64 connections. Both apps run on a copy of the same
database, migrated and seeded by dialbase (a running campaign with --pending leads);
their runs alternate. The server is pinned to CPU 0 and wrk to CPU 1. Prints a markdown
table and writes bench/results/lease-<time>.md.

The leads' zone key is the account's time zone (UTC), as dialbase decides it for numbers
without a country code; --zones N spreads them round-robin over N real IANA zones and
--calling-hours gives the campaign calling hours ("half": hours inside which about half
of the zones are now, see lease_zones.py).
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
    run,
    running_server,
    warn_if_busy,
    wrk,
)
from lease_reference_app import PG_PICK, SQLITE_FORMAT, statements
from lease_zones import half_open_hours, open_keys, pick_zones

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
    app: str  # reference, baseline or dialbase
    cmd: str
    template_url: str
    profile_tag: str = ""  # in its profile's name, when --profile


@dataclass(frozen=True)
class Queue:
    """The zone keys of the leads (None: the account's time zone) and the calling hours."""

    zones: list[str] | None = None
    hours: str | None = None
    margin_minutes: int | None = None  # "half" hours: until the first zone crosses an edge


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
        "--zones",
        type=int,
        default=0,
        help="spread the leads round-robin over N real IANA zones (default: all in the "
        "account's zone, UTC)",
    )
    ap.add_argument(
        "--calling-hours",
        help='the campaign\'s calling hours, e.g. "mon-sun 00:00-24:00"; "half": hours '
        "inside which about half of the --zones are at the start",
    )
    ap.add_argument(
        "--baseline",
        help="a checkout of an earlier dialbase with its own .venv: compare its dialbase "
        "with this one (instead of the reference), each on a database its own code "
        "migrated and set up, filled by the same SQL",
    )
    ap.add_argument("--tag", help="appended to the results file's and the profiles' names (-TAG)")
    ap.add_argument(
        "--dialbase-cmd",
        default=os.environ.get("BENCH_DIALBASE_CMD", DIALBASE_CMD),
        help="testing only: server command template instead of 'dialbase serve' "
        "(fields {python} {dialbase} {port} {url})",
    )
    args = ap.parse_args()
    args.suffix = f"-{args.tag}" if args.tag else ""
    args.workloads = [w.strip() for w in args.workload.split(",") if w.strip()]
    if not args.workloads or any(w not in WORKLOADS for w in args.workloads):
        ap.error(f"--workload takes a comma-separated list of {', '.join(WORKLOADS)}")
    if args.sizes:
        args.size_list = sorted({int(s) for s in args.sizes.replace("_", "").split(",")})
        if len(args.size_list) < 2:
            ap.error("--sizes takes at least two queue sizes")
    if args.calling_hours == "half" and args.zones < 2:
        ap.error("--calling-hours half needs --zones 2 or more")
    if args.baseline:
        if args.sizes or args.zones or args.calling_hours:
            ap.error("--baseline compares the default queue: no --sizes, --zones, --calling-hours")
        args.baseline = os.path.abspath(args.baseline)
        for tool in ("python", "dialbase"):
            if not os.path.exists(f"{args.baseline}/.venv/bin/{tool}"):
                ap.error(f"--baseline: {args.baseline}/.venv/bin/{tool} not found")
    return args


# --- the seeded database -------------------------------------------------------------


def setup_dialbase(python: str, url: str, retry_delay: int, max_attempts: int, queue: Queue):
    """Migrate and set up the account and its running campaign with the dialbase of
    ``python`` (lease_setup.py); returns what it printed (campaign_id, timezone, ...)."""
    cmd = [python, BENCH / "lease_setup.py", url, "--retry-delay", retry_delay]
    cmd += ["--max-attempts", max_attempts]
    if queue.hours is not None:
        cmd += ["--calling-hours", queue.hours]
    res = run(cmd, timeout=300)
    if res.returncode:
        die(f"setting up {url} with {python} failed:\n{res.stdout}{res.stderr}")
    return orjson.loads(res.stdout.strip().splitlines()[-1])


def lead_rows(campaign_id: int, pending: int, zones: list[str] | None):
    """Pending leads: priorities 1..5 at random, due one millisecond apart in the past,
    a third with an extra column; with ``zones`` (a schema with dialing rules) also the
    comparison form (the number as sent: no country code) and the zone key, round-robin."""
    rnd = random.Random(pending)
    start = datetime.now(UTC) - timedelta(milliseconds=pending, hours=1)
    for n in range(pending):
        at = (start + timedelta(milliseconds=n)).strftime(SQLITE_FORMAT)
        extra = f'{{"city":"{CITIES[n % 6]}"}}' if n % 3 == 0 else "{}"
        phone = f"9{n:09d}"
        row = (campaign_id, phone, f"Lead {n}", rnd.randint(1, 5), extra, at, at)
        yield row + (phone, zones[n % len(zones)]) if zones else row


_COLUMNS = "campaign_id, phone_number, name, priority, extra, status, attempts, due_at, created_at"
_RULES_COLUMNS = ", phone_e164, time_zones"


def fill_sqlite(url: str, campaign_id: int, pending: int, zones: list[str]) -> bool:
    """The leads (and the campaign's zone keys, if the schema has them); whether it has."""
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    rules = any(row[1] == "time_zones" for row in db.execute("PRAGMA table_info(leads)"))
    columns, marks = _COLUMNS, "?, ?, ?, ?, ?, 'pending', 0, ?, ?"
    if rules:
        columns, marks = columns + _RULES_COLUMNS, marks + ", ?, ?"
    with db:
        db.executemany(
            f"INSERT INTO leads ({columns}) VALUES ({marks})",
            lead_rows(campaign_id, pending, zones if rules else None),
        )
        if rules:
            db.executemany(
                "INSERT INTO campaign_zones (campaign_id, time_zones) VALUES (?, ?)",
                [(campaign_id, zone) for zone in zones],
            )
    db.execute("ANALYZE")
    db.close()
    return rules


async def fill_postgres(url: str, campaign_id: int, pending: int, zones: list[str]) -> bool:
    """The same leads as lead_rows, generated by the server (priorities from random())."""
    db = await asyncpg.connect(url)
    try:
        rules = await db.fetchval(
            "SELECT count(*) > 0 FROM information_schema.columns"
            " WHERE table_name = 'leads' AND column_name = 'time_zones'"
        )
        columns, values, args = _COLUMNS, "", [campaign_id, pending]
        if rules:
            columns += _RULES_COLUMNS
            values = ", p, ($3::text[])[g % cardinality($3::text[]) + 1]"
            args.append(zones)
        await db.execute("SELECT setseed(0.42)")
        await db.execute(
            f"""
            INSERT INTO leads ({columns})
            SELECT $1, p, 'Lead ' || g, 1 + floor(random() * 5),
                   CASE WHEN g % 3 = 0 THEN json_build_object('city',
                       (ARRAY['Pune','Mumbai','Delhi','Chennai','Kolkata','Jaipur'])[g % 6 + 1])
                   ELSE '{{}}'::json END, 'pending', 0, t, t{values}
            FROM generate_series(0, $2 - 1) AS g,
                 LATERAL (SELECT now() - interval '1 hour'
                          - make_interval(secs => (($2 - g) / 1000.0)::float8) AS t,
                          '9' || lpad(g::text, 9, '0') AS p) AS at
            """,
            *args,
        )
        if rules:
            await db.execute(
                "INSERT INTO campaign_zones (campaign_id, time_zones)"
                " SELECT $1, unnest($2::text[])",
                campaign_id,
                zones,
            )
        await db.execute("VACUUM ANALYZE leads")
        await db.execute("ANALYZE campaign_zones" if rules else "SELECT 1")
    finally:
        await db.close()
    return rules


async def query_plan(backend: str, url: str, campaign_id: int, zone: str) -> str:
    """How the reference app reads one zone key's range of the queue: it must use
    ix_leads_queue, as dialbase does."""
    now = datetime.now(UTC)
    if backend == "sqlite":
        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        sql = "EXPLAIN QUERY PLAN " + statements("sqlite")["DUE"]
        rows = db.execute(sql, (campaign_id, zone, now.strftime(SQLITE_FORMAT), 1)).fetchall()
        db.close()
        return "\n".join(row[-1] for row in rows)
    db = await asyncpg.connect(url)
    try:
        rows = await db.fetch("EXPLAIN " + PG_PICK, campaign_id, now, 1, now)
    finally:
        await db.close()
    return "\n".join(row[0] for row in rows)


@contextmanager
def seeded_database(
    backend: str,
    pending: int,
    retry_delay: int,
    queue: Queue,
    max_attempts=MAX_ATTEMPTS,
    python: str = str(PYTHON),
    tag: str = "template",
):
    """A database migrated and set up by the dialbase of ``python`` holding the bench
    campaign with ``pending`` leads, the template every app's copy is made from; yields
    (url, query plan: None on a schema without dialing rules)."""
    with fresh_database(backend, f"{tag}_{pending}") as url:
        began = time.monotonic()
        found = setup_dialbase(python, url, retry_delay, max_attempts, queue)
        campaign_id, zones = found["campaign_id"], queue.zones or [found["timezone"]]
        if backend == "sqlite":
            rules = fill_sqlite(url, campaign_id, pending, zones)
        else:
            rules = asyncio.run(fill_postgres(url, campaign_id, pending, zones))
        plan = asyncio.run(query_plan(backend, url, campaign_id, zones[0])) if rules else None
        took = time.monotonic() - began
        keys = f"{len(zones)} zone keys" if rules else "no zone keys (schema before dialing rules)"
        hours = f", calling hours {found['calling_hours']!r}" if found["calling_hours"] else ""
        print(
            f"{backend:8} seeded {pending:,} pending leads ({keys}{hours}) in {took:.1f} s"
            f" [{python}]",
            flush=True,
        )
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
        opened = [open_zone_keys(args.queue)]
        for i in range(1, args.runs + 1):
            for c, server in zip(contenders, servers, strict=True):
                runs[c.label].append(
                    show_run(c.label, i, load(server.port, args.duration, workload, args))
                )
        if args.profile:
            for c, server in zip(contenders, servers, strict=True):
                if c.app != "reference":
                    run_once = functools.partial(load, server.port, args.duration, workload, args)
                    stem = f"profile-lease-{backend}-{workload.name}{c.profile_tag}{args.suffix}"
                    profile(server.pid, run_once, stem)
        opened.append(open_zone_keys(args.queue))
        for c, url in zip(contenders, urls, strict=True):
            twice[c.label] = leased_twice(url)
    conns = args.connections or workload.connections
    rows = [summarize(backend, workload.name, conns, c, runs[c.label]) for c in contenders]
    for row in rows:
        row["leased_twice"] = twice[row["label"]]
        if args.queue.hours:
            row["open_zone_keys"] = opened  # at the first measured run and after the last
    if args.queue.hours:
        print(f"{backend:8} zone keys open: {opened[0]} at the first run, {opened[1]} after")
    return rows


def open_zone_keys(queue: Queue) -> int | None:
    """How many of the campaign's zone keys are inside its calling hours now."""
    if not queue.hours:
        return None
    return len(open_keys(queue.hours, queue.zones or ["UTC"], datetime.now(UTC)))


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
    """Each workload: dialbase and the reference (or the baseline's dialbase), each on a
    copy of one seeded database (the baseline: of one its own code set up)."""
    rows, seeded = [], functools.partial(seeded_database, backend, args.pending, args.retry_delay)
    with ExitStack() as stack:
        url, plans[backend] = stack.enter_context(seeded(args.queue))
        if args.baseline:
            python, cmd = f"{args.baseline}/.venv/bin/python", baseline_cmd(args.baseline)
            other, _ = stack.enter_context(seeded(args.queue, python=python, tag="baseline"))
            yardstick = Contender("", "baseline", cmd, other, "-baseline")
        else:
            yardstick = Contender("", "reference", REFERENCE_CMD, url)
        for name in args.workloads:
            contenders = [
                replace(yardstick, label=f"{backend} {name} {yardstick.app}"),
                Contender(f"{backend} {name} dialbase", "dialbase", args.dialbase_cmd, url),
            ]
            rows += compare(args, backend, WORKLOADS[name], contenders)
    for r in rows:
        ref = next(x for x in rows if x["workload"] == r["workload"] and x["app"] != "dialbase")
        if r["app"] == "dialbase" and ref["rps"]:
            r["ratio"] = r["rps"] / ref["rps"]
            r["p50_ratio"] = r["p50_ms"] / ref["p50_ms"]
            r["p99_ratio"] = r["p99_ms"] / ref["p99_ms"]
    return rows


def baseline_cmd(checkout: str) -> str:
    """DIALBASE_CMD with the baseline checkout's dialbase."""
    return DIALBASE_CMD.replace("{dialbase}", shlex.quote(f"{checkout}/.venv/bin/dialbase"))


def sizes(args, backend: str, plans: dict) -> list:
    """Workload a against dialbase on queues of each size, runs alternating between them."""
    with ExitStack() as stack:
        contenders = []
        for size in args.size_list:
            url, plans[f"{backend} {size}"] = stack.enter_context(
                seeded_database(backend, size, args.retry_delay, args.queue, SIZE_MAX_ATTEMPTS)
            )
            label = f"{backend} {size:,} pending"
            contenders.append(Contender(label, "dialbase", args.dialbase_cmd, url, f"-{size}"))
        workload = replace(WORKLOADS["a"], lease_seconds=SIZE_LEASE_SECONDS)
        rows = compare(args, backend, workload, contenders)
    for size, r in zip(args.size_list, rows, strict=True):
        r["pending"] = size
        r["p50_ratio"] = r["p50_ms"] / rows[0]["p50_ms"]
        r["p99_ratio"] = r["p99_ms"] / rows[0]["p99_ms"]
        r["rps_ratio"] = r["rps"] / rows[0]["rps"]
    return rows


def table(rows: list, size_mode: bool) -> str:
    if size_mode:
        head = ["backend", "pending", "req/s", "p50 ms", "p99 ms", "non-2xx", "empty"]
        head += ["twice", "p50 / smallest", "p99 / smallest", "req/s / smallest"]
    else:
        yardstick = "baseline" if any(r["app"] == "baseline" for r in rows) else "reference"
        head = ["backend", "workload", "conns", "app", "req/s", "leases/s", "p50 ms", "p99 ms"]
        head += ["non-2xx", "empty", "twice", f"dialbase/{yardstick}"]
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
            cells += [f"{r['p50_ratio']:.2f}", f"{r['p99_ratio']:.2f}", f"{r['rps_ratio']:.2f}"]
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
    path = RESULTS / f"lease-{stamp}{args.suffix}.md"
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# Lease benchmark {stamp} UTC\n\n`{env['command']}` on {env['cpu']} "
        f"({env['cpus']} CPUs){note}\n\n{text}\n\n```json\n"
        f"{orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()}\n```\n"
    )
    return str(path.relative_to(ROOT))


def make_queue(args) -> Queue:
    """The zones and hours of the run (``half``: computed now, see lease_zones.py)."""
    zones = pick_zones(args.zones) if args.zones else None
    if args.calling_hours != "half":
        return Queue(zones, args.calling_hours)
    hours, inside, margin = half_open_hours(zones, datetime.now(UTC))
    print(f"bench: calling hours {hours!r}: {inside} of {len(zones)} zones inside now; the")
    print(f"bench: first zone crosses an edge in {margin} min", flush=True)
    backends = 2 if args.backend == "both" else 1
    runs = len(args.size_list) if args.sizes else 2 * len(args.workloads)
    estimate = backends * (runs * (args.warmup + args.runs * args.duration + 5) + 120) / 60
    if margin < estimate:
        print(
            f"bench: warning: the run may take {estimate:.0f} min, longer than that: the"
            " open zones may change during the runs (see the open_zone_keys of the results)",
            file=sys.stderr,
        )
    return Queue(zones, hours, margin)


def describe_queue(args) -> str:
    q = args.queue
    zones = (
        f"spread round-robin over {len(q.zones)} IANA zones ({', '.join(q.zones)})"
        if q.zones
        else "all in the account's time zone (UTC)"
    )
    hours = f"calling hours {q.hours!r}" if q.hours else "no calling hours"
    if q.margin_minutes is not None:
        hours += f" (about half of the zones inside at the start, {q.margin_minutes} min margin)"
    return f"Leads {zones}; {hours}."


def describe(args) -> str:
    if args.sizes:
        return (
            f"Size mode: workload a ({WORKLOADS['a'].what}, {args.connections or 16} "
            f"connections) against dialbase only, runs alternating between the queue sizes. "
            f"Leases of {SIZE_LEASE_SECONDS} s, up to {SIZE_MAX_ATTEMPTS} attempts: a lapsed "
            "lease's lead is due again at once, so the queues never run dry. Medians of "
            f"{args.runs} {args.duration} s runs. {describe_queue(args)}"
        )
    lines = [f"Queue: {args.pending:,} pending leads; retry delay {args.retry_delay} s."]
    lines.append(describe_queue(args))
    if args.baseline:
        lines.append(f"Baseline: the dialbase of {args.baseline} on a database it set up.")
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
    args.queue = make_queue(args)
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
