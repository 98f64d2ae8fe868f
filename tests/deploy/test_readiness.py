"""/healthz and /readyz, and Redis going away (refusing, hung, cut off): rate limits fail
open onto in-process counters after one short wait per outage, and readiness says so."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import time_machine
from sqlalchemy.engine import make_url

from dialbase.app import create_app
from dialbase.config import Settings
from tests.conftest import REDIS_URL, FakeClock, RedisPeer, needs_redis
from tests.deploy.processes import TcpProxy, free_port
from tests.deploy.traffic import ADD, STORED, add_body
from tests.factories import make_account, make_campaign


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The app in this process, with a client; its circuit runs on a ``FakeClock``."""
    app = create_app(settings)
    async with app.lifespan():
        app.services.limiter.circuit.clock = FakeClock()
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://dialbase.test") as c:
            yield c, app


@pytest.fixture(autouse=True)
def mid_minute() -> Iterator[None]:
    """Each test starts 5 s into a clock minute, far from the in-process counters' edge."""
    now = time.time()
    with time_machine.travel(now - now % 60 + 5):
        yield


async def timed(request: Awaitable[httpx.Response]) -> tuple[float, httpx.Response]:
    start = time.perf_counter()
    response = await request
    return time.perf_counter() - start, response


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "dialbase.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


async def test_healthz_answers_and_readyz_checks_the_database(sqlite_url: str):
    async with serving(Settings(database_url=sqlite_url)) as (client, _app):
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
    async with serving(settings) as (client, app):
        await make_account(app.services.sessionmaker, rate_limit=3)
        await make_campaign(app.services.sessionmaker)
        replies = [await client.post(ADD, json=add_body(f"955555555{i}")) for i in range(5)]
        ready = await client.get("/readyz")

    assert [r.status_code for r in replies] == [200, 200, 200, 429, 429]
    assert all(r.json() == STORED for r in replies[:3])
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["redis"].startswith("unavailable: circuit open")
    warnings = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once a request


async def test_a_hung_redis_delays_one_request_and_readiness_says_so_at_once(
    sqlite_url: str, redis_peer: RedisPeer, caplog: pytest.LogCaptureFixture
):
    """Redis accepts connections and never answers: the first request waits the short
    timeout, the next ones do not wait at all, /readyz answers 503 naming the open
    circuit without waiting, and one warning is logged."""
    settings = Settings(database_url=sqlite_url, redis_url=redis_peer.url)
    caplog.set_level(logging.WARNING, logger="dialbase.ratelimit")
    async with serving(settings) as (client, app):
        await make_account(app.services.sessionmaker)
        await make_campaign(app.services.sessionmaker)
        first_took, first = await timed(client.post(ADD, json=add_body("9777777770")))
        start = time.perf_counter()
        rest = [await client.post(ADD, json=add_body(f"977777777{i}")) for i in range(1, 11)]
        rest_took = time.perf_counter() - start
        ready_took, ready = await timed(client.get("/readyz"))

    assert [r.json() for r in (first, *rest)] == [STORED] * 11
    assert first_took >= app.services.limiter.timeout / 2
    assert rest_took < first_took * 10 / 3  # ten requests: far less than ten timeouts
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"].startswith("unavailable: circuit open")
    assert ready.json()["checks"]["database"] == "ok"
    assert ready_took < first_took  # no wait for Redis
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]


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
        async with serving(settings) as (client, app):
            await make_account(app.services.sessionmaker)
            await make_campaign(app.services.sessionmaker)
            before = await client.post(ADD, json=add_body("9666666661"))
            ready_before = await client.get("/readyz")
            proxy.cut()
            during = await client.post(ADD, json=add_body("9666666662"))
            ready_during = await client.get("/readyz")
            proxy.restore()
            app.services.limiter.circuit.clock.now += app.services.limiter.circuit.cool_down
            after = await client.post(ADD, json=add_body("9666666663"))
            ready_after = await client.get("/readyz")
    finally:
        proxy.close()

    assert [r.json() for r in (before, during, after)] == [STORED] * 3
    assert ready_before.json()["checks"] == {"database": "ok", "redis": "ok"}
    assert ready_during.status_code == 503
    assert ready_during.json()["checks"]["redis"].startswith("unavailable: circuit open")
    assert ready_during.json()["checks"]["database"] == "ok"
    assert ready_after.json()["checks"] == {"database": "ok", "redis": "ok"}
    assert ready_after.status_code == 200
