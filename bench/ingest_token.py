#!/usr/bin/env python3
"""AddCampaignData with a bearer token vs with the basic key, in one run, on one server.

    .venv/bin/python bench/ingest_token.py [--backend sqlite|postgres] [--duration 10]
        [--runs 3] [--profile]

One fresh database, one ``dialbase serve`` (pinned to CPU 0, wrk to CPU 1) with two
accounts: ``basic000`` (BASIC_AUTH, key in the body, as bench/ingest.lua sends it) and
``token000`` (TOKEN_AUTH, ``Authorization: Bearer``, a token from Generate Token), each
with a campaign "Bench". The runs alternate basic, bearer, basic, bearer, ... so that both
see the same machine and the same database growth. Reported: the median req/s of each
mode, the median of the per-pair ratios (each bearer run over the basic run just before
it), and the server's CPU time per request (user + system, its whole process tree), which
other work on a shared machine skews much less than req/s; written to
bench/results/ingest-token-<time>.md.
"""

import argparse
import asyncio
import functools
import http.client
import shlex
import statistics
from datetime import UTC, datetime

import orjson
from benchlib import (
    ACCOUNT_LIMIT,
    DIALBASE,
    DIALBASE_CMD,
    PYTHON,
    RESULTS,
    ROOT,
    SERVER_ENV,
    cpu_seconds,
    die,
    ensure_wrk,
    environment,
    free_port,
    fresh_database,
    profile,
    running_server,
    warn_if_busy,
    wrk,
)

LUA = ROOT / "bench" / "ingest_token.lua"
PATH = "/ca_apis/AddCampaignData"
BASIC = ("basic000", "benchkey-basic-123")
TOKEN = ("token000", "benchkey-token-123")
MODES = ("basic", "bearer")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    ap.add_argument("--runs", type=int, default=3, help="measured runs per mode (median)")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per mode")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--profile", action="store_true", help="one extra bearer run under py-spy")
    return ap.parse_args()


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
            for (user, key), mode in ((BASIC, "BASIC_AUTH"), (TOKEN, "TOKEN_AUTH")):
                await create_account(
                    session, user, api_key=key, auth_mode=mode, rate_limit=ACCOUNT_LIMIT
                )
                await create_campaign(session, user, "Bench", dial_type="Progressive")
    finally:
        await engine.dispose()


def generate_token(port: int) -> str:
    user, key = TOKEN
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        body = orjson.dumps({"userName": user, "apiKey": key})
        conn.request("POST", "/ca_apis/CAToken/generateToken", body, {"apiKey": key})
        answer = orjson.loads(conn.getresponse().read())
    finally:
        conn.close()
    if "token" not in answer:
        die(f"generateToken answered {answer}")
    return str(answer["token"])


def show(mode: str, i: int, r: dict) -> dict:
    print(
        f"{mode:6} run {i}: {r['rps']:9.0f} req/s  p50 {r['p50_us'] / 1000:6.2f} ms"
        f"  p99 {r['p99_us'] / 1000:6.2f} ms  CPU {r['cpu_us']:5.0f} us/req"
        f"  ok {r['ok_bodies']}  status {r['status']}",
        flush=True,
    )
    return r


def summary(mode: str, runs: list) -> dict:
    return {
        "mode": mode,
        "rps": statistics.median(r["rps"] for r in runs),
        "p50_ms": statistics.median(r["p50_us"] for r in runs) / 1000,
        "p99_ms": statistics.median(r["p99_us"] for r in runs) / 1000,
        "cpu_us": statistics.median(r["cpu_us"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "ok_bodies": sum(r["ok_bodies"] for r in runs),
        "non_2xx": sum(r["non_2xx"] for r in runs),
        "runs": runs,
    }


def main() -> None:
    args = parse_args()
    ensure_wrk()
    warn_if_busy(args)
    if not DIALBASE.exists():
        die(f"{DIALBASE} not found: install dialbase into the venv (pip install -e .)")
    with fresh_database(args.backend, "token") as url:
        asyncio.run(_seed(url))
        port = free_port()
        cmd = shlex.split(DIALBASE_CMD.format(python=PYTHON, dialbase=DIALBASE, port=port, url=url))
        env = {**SERVER_ENV, "DIALBASE_DATABASE_URL": url}
        with running_server(cmd, env, port) as server:
            token = generate_token(port)
            secrets = {"basic": (BASIC[0], BASIC[1]), "bearer": (TOKEN[0], token)}

            def load(mode: str, seconds: float, index: int) -> dict:
                user, secret = secrets[mode]
                cpu_before = cpu_seconds(server.pid)
                result = wrk(
                    port, seconds, LUA, PATH, [index, mode, user, secret],
                    connections=args.connections,
                )  # fmt: skip
                result["cpu_us"] = (cpu_seconds(server.pid) - cpu_before) * 1e6 / result["requests"]
                if result["non_2xx"] or not result["ok_bodies"]:
                    die(f"{mode}: requests failed: {result['status']}, {result['ok_bodies']} ok")
                return result

            for n, mode in enumerate(MODES):
                load(mode, args.warmup, n)
            runs: dict[str, list] = {mode: [] for mode in MODES}
            index = len(MODES)
            for i in range(1, args.runs + 1):
                for mode in MODES:
                    runs[mode].append(show(mode, i, load(mode, args.duration, index)))
                    index += 1
            if args.profile:
                run_once = functools.partial(load, "bearer", args.duration, index)
                profile(server.pid, run_once, f"profile-token-{args.backend}")
    rows = [summary(mode, runs[mode]) for mode in MODES]
    pairs = [b["rps"] / a["rps"] for a, b in zip(runs["basic"], runs["bearer"], strict=True)]
    ratio = statistics.median(pairs)
    cpu_ratio = rows[0]["cpu_us"] / rows[1]["cpu_us"]
    table = "\n".join(
        [
            "| mode | req/s | p50 ms | p99 ms | CPU us/req | requests | Success bodies |",
            "|---|---|---|---|---|---|---|",
        ]
        + [
            f"| {r['mode']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f}"
            f" | {r['cpu_us']:.0f} | {r['requests']} | {r['ok_bodies']} |"
            for r in rows
        ]
    )
    text = (
        f"{table}\n\nbearer/basic req/s, median of the pairs: {ratio:.2f}"
        f" (pairs: {', '.join(f'{p:.2f}' for p in pairs)})\n"
        f"basic/bearer CPU per request (bearer's throughput at saturation): {cpu_ratio:.2f}"
    )
    print(f"\n{text}\n\nresults: {write_results(args, rows, ratio, cpu_ratio, text)}")


def write_results(
    args: argparse.Namespace, rows: list, ratio: float, cpu_ratio: float, text: str
) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    env = environment(args, stand_in=False)
    data = orjson.dumps(
        {"environment": env, "ratio": ratio, "cpu_ratio": cpu_ratio, "results": rows},
        option=orjson.OPT_INDENT_2,
    ).decode()
    path = RESULTS / f"ingest-token-{stamp}.md"
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# AddCampaignData: bearer token vs basic key, {args.backend}, {stamp} UTC\n\n"
        f"`{env['command']}` on {env['cpu']} ({env['cpus']} CPUs)\n\n{text}\n\n"
        f"```json\n{data}\n```\n"
    )
    return str(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
