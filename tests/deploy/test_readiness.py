"""/healthz and /readyz, and Redis going away: rate limits fail open, readiness says so."""

from __future__ import annotations

import logging
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from dialbase.app import create_app
from dialbase.config import Settings
from tests.conftest import REDIS_URL, needs_redis
from tests.deploy.processes import TcpProxy, free_port
from tests.deploy.traffic import ADD, STORED, add_body, clear_of_minute_edge
from tests.factories import make_account, make_campaign


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    """The app in this process, with a client and its sessionmaker."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://dialbase.test") as c:
            yield c, app.state.sessionmaker


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "dialbase.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


async def test_healthz_answers_and_readyz_checks_the_database(sqlite_url: str):
    async with serving(Settings(database_url=sqlite_url)) as (client, _):
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert (health.status_code, health.json()) == (200, {"status": "ok", "checks": {}})
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ok", "checks": {"database": "ok"}},
    )


async def test_unreachable_redis_fails_open_onto_counters_in_this_process(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
):
    nothing_listens = f"redis://127.0.0.1:{free_port()}/0"
    settings = Settings(database_url=sqlite_url, redis_url=nothing_listens)
    caplog.set_level(logging.WARNING, logger="dialbase.ratelimit")
    clear_of_minute_edge()
    async with serving(settings) as (client, sessions):
        await make_account(sessions, rate_limit=3)
        await make_campaign(sessions)
        replies = [await client.post(ADD, json=add_body(f"955555555{i}")) for i in range(5)]
        ready = await client.get("/readyz")

    assert [r.status_code for r in replies] == [200, 200, 200, 429, 429]
    assert all(r.json() == STORED for r in replies[:3])
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["redis"].startswith("unavailable")
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1  # at most once a minute, not once a request


@needs_redis
async def test_redis_cut_off_then_back_leads_are_still_stored_and_readiness_follows(
    sqlite_url: str, redis_prefix: str
):
    assert REDIS_URL
    target = make_url(REDIS_URL)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 6379)
    proxy.start()
    through_proxy = f"redis://127.0.0.1:{proxy.port}/{target.database or 0}"
    settings = Settings(database_url=sqlite_url, redis_url=through_proxy, redis_prefix=redis_prefix)
    try:
        async with serving(settings) as (client, sessions):
            await make_account(sessions)
            await make_campaign(sessions)
            before = await client.post(ADD, json=add_body("9666666661"))
            ready_before = await client.get("/readyz")
            proxy.cut()
            during = await client.post(ADD, json=add_body("9666666662"))
            ready_during = await client.get("/readyz")
            proxy.restore()
            after = await client.post(ADD, json=add_body("9666666663"))
            ready_after = await client.get("/readyz")
    finally:
        proxy.close()

    assert [r.json() for r in (before, during, after)] == [STORED] * 3
    assert ready_before.json()["checks"] == {"database": "ok", "redis": "ok"}
    assert ready_during.status_code == 503
    assert ready_during.json()["checks"]["redis"].startswith("unavailable")
    assert ready_during.json()["checks"]["database"] == "ok"
    assert ready_after.status_code == 200
