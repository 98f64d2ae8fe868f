"""Real ``dialbase serve`` processes (two workers each) send to a receiver that hangs,
and are SIGKILLed whole while deliveries are in flight; new processes are started, the
receiver comes back: every event arrives, verifiable (at least once, none lost), and the
outbox ends all delivered. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dialbase.config import Settings
from dialbase.db import create_engine, make_sessionmaker
from tests.conftest import needs_postgres
from tests.deploy import processes
from tests.deploy.traffic import ADD, STORED, add_body, key_of, seed_in_process
from tests.webhooks.support import Received, Receiver, outbox, receiver

LEADS = 40
ARRIVE_SECONDS = 120
ENV = {
    "DIALBASE_ALLOW_PRIVATE_CALLBACKS": "true",
    "DIALBASE_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "DIALBASE_WEBHOOK_RETRY_MAX_SECONDS": "1",
    "DIALBASE_WEBHOOK_LEASE_SECONDS": "3",
    "DIALBASE_WEBHOOK_TIMEOUT_SECONDS": "2",
    "DIALBASE_WEBHOOK_POLL_SECONDS": "0.2",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=needs_postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kill.db'}"
        return
    yield request.getfixturevalue("pg_url")


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with receiver() as server:
        yield server


def _start(servers: Any, name: str, url: str) -> processes.Server:
    server = servers(name, env=processes.clean_env(DIALBASE_DATABASE_URL=url, **ENV), workers=2)
    processes.wait_ready(server)
    return server


def _hang(item: Received) -> int:
    time.sleep(4)  # longer than the senders' timeout: they are mid-delivery when killed
    return 503


async def test_every_event_arrives_after_every_worker_was_killed_mid_delivery(
    servers: Any, database_url: str, hooks: Receiver
):
    await seed_in_process(database_url)
    hooks.answer = _hang
    first = _start(servers, "first", database_url)
    auth = ("acme", key_of("acme"))
    async with httpx.AsyncClient(base_url=first.url, auth=auth, timeout=30) as client:
        hook = await client.put("/v1/webhooks", json={"url": hooks.url})
        assert hook.status_code == 201, hook.text
        secret = hook.json()["secret"]
        answers = await asyncio.gather(
            *(client.post(ADD, json=add_body(f"98765{i:05d}")) for i in range(LEADS))
        )
        assert all(a.json() == STORED for a in answers), [a.text for a in answers[:3]]
        assert (await client.post("/v1/campaigns/Sales/start")).status_code == 200
    deadline = time.monotonic() + 30
    while len(hooks.received) < 4:  # both workers are sending, the receiver hangs
        assert time.monotonic() < deadline, first.output()
        await asyncio.sleep(0.1)
    processes.kill(first)  # SIGKILL, every process of the server
    first.proc.wait(10)
    processes.stop(first)

    hooks.answer = None  # the receiver is back: 200 from now on
    second = _start(servers, "second", database_url)
    engine = create_engine(Settings(database_url=database_url))
    try:
        sessions = make_sessionmaker(engine)
        rows = await outbox(sessions)
        assert len(rows) == LEADS + 1  # every success wrote its event
        wanted = {row.event_id for row in rows}
        deadline = time.monotonic() + ARRIVE_SECONDS
        while not wanted <= {item.headers["webhook-id"] for item in hooks.delivered()}:
            assert time.monotonic() < deadline, second.output()
            await asyncio.sleep(0.2)
        deadline = time.monotonic() + 30
        while {row.status for row in await outbox(sessions)} != {"delivered"}:
            assert time.monotonic() < deadline, second.output()
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()
        processes.stop(second)
    delivered = hooks.delivered()
    payloads = {item.headers["webhook-id"]: item.verified(secret) for item in delivered}
    numbers = {p["data"]["phoneNumber"] for p in payloads.values() if p["type"] == "lead.added"}
    assert numbers == {f"98765{i:05d}" for i in range(LEADS)}
    assert sum(p["type"] == "campaign.started" for p in payloads.values()) == 1
