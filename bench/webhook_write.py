#!/usr/bin/env python3
"""The SQLite lead writer's CPU cost per lead, without and with a webhook, in process.

    .venv/bin/python bench/webhook_write.py [--batches 200] [--batch 256] [--rounds 5]

For each case a fresh SQLite file (WAL, synchronous=normal) with one account and
campaign; ``none``: no webhook (the path every account without one takes); ``outcome``:
the account has a webhook that does not enable lead.added (the event statements run and
write nothing); ``added``: lead.added enabled (one outbox row per lead). Batches of
distinct numbers go straight to ``SQLiteBatchStore.write`` (no HTTP). Reported: process
CPU time (``time.process_time``, less sensitive than wall time to other load on a shared
machine) per 1,000 leads, the median of ``--rounds`` rounds, cases interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from dialbase.accounts.service import create_account
from dialbase.campaigns.service import create_campaign
from dialbase.config import Settings
from dialbase.db import create_engine, make_sessionmaker, session_scope
from dialbase.leads.batch import NewLead
from dialbase.leads.stores.sqlite import SQLiteBatchStore
from dialbase.migrate import upgrade
from dialbase.sqlite_writer import SQLiteWriter
from dialbase.webhooks.service import WebhookRequest, put_webhook

CASES = {"none": None, "outcome": ("lead.outcome",), "added": ("lead.added",)}


async def _prepare(path: Path, events: tuple[str, ...] | None) -> tuple[Settings, int, int]:
    settings = Settings(database_url=f"sqlite:///{path}")
    engine = create_engine(settings)
    try:
        await upgrade(engine)
        async with session_scope(make_sessionmaker(engine)) as session:
            account, _ = await create_account(session, "bench", api_key="bench-secret-key")
            campaign = await create_campaign(session, "bench", "Bench", dial_type="Progressive")
            if events:
                hook = WebhookRequest("http://127.0.0.1:9/bench", None, events)
                await put_webhook(session, account, None, hook)
        async with engine.connect() as conn:
            revision = (
                await conn.exec_driver_sql("SELECT value FROM config_revision WHERE id = 1")
            ).scalar_one()
        return settings, campaign.id, int(revision)
    finally:
        await engine.dispose()


def _batch(campaign_id: int, revision: int, start: int, size: int, hooks: bool) -> list[NewLead]:
    return [
        NewLead(
            campaign_id=campaign_id,
            revision=revision,
            phone_number=f"+9198{n:08d}",
            name=None,
            priority=1,
            expires_at=None,
            agent_id=None,
            skill=None,
            extra={"city": "Pune"} if n % 3 == 0 else {},
            check_duplicate=n % 2 == 0,
            action=None,
            phone_e164=f"+9198{n:08d}",
            time_zones="Asia/Kolkata",
            webhooks=hooks,
        )
        for n in range(start, start + size)
    ]


async def _round(case: str, folder: Path, batches: int, size: int) -> float:
    events = CASES[case]
    path = folder / f"{case}-{time.monotonic_ns()}.db"
    settings, campaign_id, revision = await _prepare(path, events)
    writer = SQLiteWriter(settings)
    store = SQLiteBatchStore(writer)
    try:
        started = time.process_time()
        for i in range(batches):
            await store.write(_batch(campaign_id, revision, i * size, size, events is not None))
        spent = time.process_time() - started
    finally:
        await writer.close()
    return spent / (batches * size) * 1000 * 1000  # ms per 1,000 leads


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    results: dict[str, list[float]] = {case: [] for case in CASES}
    with tempfile.TemporaryDirectory(prefix="dialbase-bench-") as folder:
        for _ in range(args.rounds):
            for case in CASES:
                results[case].append(await _round(case, Path(folder), args.batches, args.batch))
    base = statistics.median(results["none"])
    print("| webhook | CPU ms per 1,000 leads (median) | rounds | vs none |")
    print("|---|---|---|---|")
    for case, values in results.items():
        median = statistics.median(values)
        shown = ", ".join(f"{v:.1f}" for v in values)
        print(f"| {case} | {median:.1f} | {shown} | {median / base:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
