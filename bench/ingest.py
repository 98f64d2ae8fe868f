#!/usr/bin/env python3
"""Ingest benchmark: dialbase vs a minimal reference app under the same wrk load.

    bench/ingest [--backend sqlite|postgres|both] [--duration 10] [--runs 3] [--profile]
    bench/ingest --endpoint legacy ...

For each backend, a fresh database per app, the server pinned to CPU 0 and wrk
to CPU 1; prints a markdown table and writes bench/results/ingest-<time>.md.
With ``--endpoint legacy`` the two runs are dialbase's AddCampaignData (ingest.lua) and
dialbase's older add endpoint (form posts, XML answers: ingest_legacy.lua), and the
ratio is the older endpoint's throughput over AddCampaignData's.
"""

import argparse
import functools
import os
import statistics
from datetime import UTC, datetime

import orjson
from benchlib import (
    BENCH,
    DIALBASE_CMD,
    REFERENCE_CMD,
    RESULTS,
    ROOT,
    cpu_seconds,
    ensure_wrk,
    environment,
    profile,
    rss_kb,
    run_wrk,
    serve_app,
    warn_if_busy,
    wrk,
)

APPS = ("reference", "dialbase")
LEGACY_APPS = ("dialbase", "legacy")  # --endpoint legacy: AddCampaignData, the older one
LEGACY_LUA = BENCH / "ingest_legacy.lua"
LEGACY_PATH = "/cloudAgentRestAPI/index.php/CloudAgent/CloudAgentAPI/addCamapaignData"
COLUMNS = (
    "backend",
    "app",
    "req/s",
    "p50 ms",
    "p99 ms",
    "CPU us/req",
    "Success %",
    "non-2xx",
    "socket err",
    "RSS MiB",
    "dialbase/reference",
)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    ap.add_argument("--runs", type=int, default=3, help="measured runs per app (median reported)")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before the runs")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument(
        "--accounts", type=int, default=1, help="accounts (each with a campaign) sharing the load"
    )
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (1 or 2)")
    ap.add_argument(
        "--endpoint",
        choices=("add", "legacy"),
        default="add",
        help="add: dialbase vs the reference app (default); legacy: dialbase's older add"
        " endpoint vs its AddCampaignData (one account)",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="one extra dialbase run under py-spy; writes results/profile-<backend>*.txt",
    )
    ap.add_argument(
        "--dialbase-cmd",
        default=os.environ.get("BENCH_DIALBASE_CMD", DIALBASE_CMD),
        help="testing only: server command template instead of 'dialbase serve' "
        "(fields {python} {dialbase} {port} {url}; skips the CLI setup)",
    )
    args = ap.parse_args()
    if args.endpoint == "legacy" and args.accounts != 1:
        ap.error("--endpoint legacy takes one account (the key alone names the account)")
    os.environ["BENCH_ACCOUNTS"] = str(args.accounts)
    return args


def run_legacy_wrk(
    port: int, seconds: float, run_index: int, api_key: str, connections: int = 32, threads: int = 1
) -> dict:
    """One wrk run with ingest_legacy.lua against the older add endpoint."""
    args = [run_index, api_key]
    return wrk(
        port, seconds, LEGACY_LUA, LEGACY_PATH, args, connections=connections, threads=threads
    )


def bench_app(args, backend: str, app: str) -> dict:
    template = REFERENCE_CMD if app == "reference" else args.dialbase_cmd
    with serve_app(template, backend, app) as (server, key):
        runner = run_legacy_wrk if app == "legacy" else run_wrk
        load = functools.partial(
            runner, server.port, api_key=key, connections=args.connections, threads=args.threads
        )
        load(args.warmup, 0)

        def measured(i: int) -> dict:
            """One run, with the server's CPU time (its process tree) per request."""
            before = cpu_seconds(server.pid)
            result = load(args.duration, i)
            spent = cpu_seconds(server.pid) - before
            result["cpu_us"] = spent * 1e6 / max(result["requests"], 1)
            return result

        runs = [show_run(backend, app, i, measured(i)) for i in range(1, args.runs + 1)]
        rss = rss_kb(server.pid)
        print(f"{backend:8} {app:9} server RSS after the runs: {rss / 1024:.1f} MiB", flush=True)
        if args.profile and app != "reference":
            run_once = functools.partial(load, args.duration, args.runs + 1)
            stem = f"profile-{backend}" if app == "dialbase" else f"profile-{backend}-{app}"
            profile(server.pid, run_once, stem)
    return summarize(backend, app, runs, rss)


def show_run(backend: str, app: str, i: int, r: dict) -> dict:
    print(
        f"{backend:8} {app:9} run {i}: {r['rps']:9.0f} req/s  p50 {r['p50_us'] / 1000:6.2f} ms"
        f"  p99 {r['p99_us'] / 1000:6.2f} ms  CPU {r['cpu_us']:5.0f} us/req  status {r['status']}",
        flush=True,
    )
    return r


def summarize(backend: str, app: str, runs: list, rss: int) -> dict:
    def median(key):
        return statistics.median(r[key] for r in runs)

    def total(key):
        return sum(r[key] for r in runs)

    return {
        "backend": backend,
        "app": app,
        "rps": median("rps"),
        "p50_ms": median("p50_us") / 1000,
        "p99_ms": median("p99_us") / 1000,
        "cpu_us": median("cpu_us"),
        "requests": total("requests"),
        "non_2xx": total("non_2xx"),
        "socket_errors": total("socket_errors"),
        "ok_bodies": total("ok_bodies"),
        "rss_mib": rss / 1024,
        "runs": runs,
    }


def add_ratios(rows: list, apps: tuple = APPS) -> None:
    """The second app's throughput over the first's, per backend."""
    base, measured = apps
    reference = {r["backend"]: r["rps"] for r in rows if r["app"] == base}
    for r in rows:
        if r["app"] == measured and reference.get(r["backend"]):
            r["ratio"] = r["rps"] / reference[r["backend"]]


def markdown_table(rows: list, apps: tuple = APPS) -> str:
    columns = COLUMNS if apps == APPS else (*COLUMNS[:-1], "legacy/AddCampaignData")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else ""
        success = 100 * r["ok_bodies"] / max(r["requests"], 1)
        cells = (
            r["backend"],
            r["app"],
            f"{r['rps']:.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['cpu_us']:.0f}",
            f"{success:.1f}",
            r["non_2xx"],
            r["socket_errors"],
            f"{r['rss_mib']:.1f}",
            ratio,
        )
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def write_results(args, rows: list, table: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    env = environment(args, stand_in=args.dialbase_cmd != DIALBASE_CMD)
    note = (
        "\n\n**dialbase replaced by a stand-in (`--dialbase-cmd`): not a dialbase result.**"
        if env["dialbase_stand_in"]
        else ""
    )
    data = orjson.dumps({"environment": env, "results": rows}, option=orjson.OPT_INDENT_2).decode()
    path = RESULTS / f"ingest-{stamp}.md"
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# Ingest benchmark {stamp} UTC\n\n`{env['command']}` on {env['cpu']} "
        f"({env['cpus']} CPUs){note}\n\n{table}\n\n```json\n{data}\n```\n"
    )
    return str(path.relative_to(ROOT))


def main() -> None:
    args = parse_args()
    ensure_wrk()
    warn_if_busy(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    apps = APPS if args.endpoint == "add" else LEGACY_APPS
    rows = [bench_app(args, backend, app) for backend in backends for app in apps]
    add_ratios(rows, apps)
    table = markdown_table(rows, apps)
    print(f"\n{table}\n\nresults: {write_results(args, rows, table)}")


if __name__ == "__main__":
    main()
