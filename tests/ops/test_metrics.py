"""``/metrics`` of an application in this process, on both backends. The registry is the
process's: each test compares a scrape after its requests with one before."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select

from dialbase.accounts.models import Account
from dialbase.db import session_scope
from dialbase.webhooks.models import WebhookEvent
from tests.compat.helpers import client_for, running_app
from tests.conftest import Backend, RedisPeer
from tests.factories import all_leads, body, make_account, make_campaign
from tests.faults.lost import fails_at
from tests.ops.scrape import Scrape

ADD = "/ca_apis/AddCampaignData"
STORED = {"status": "Success", "message": "SuccessFully Updated Progressive Campaign"}
AUTH = ("acme", "acme-secret-key")


async def scrape(client: httpx.AsyncClient) -> Scrape:
    answer = await client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return Scrape.parse(answer.text)


async def acme(app: Any, **account: Any) -> None:
    await make_account(app.services.sessionmaker, **account)
    await make_campaign(app.services.sessionmaker)


async def test_requests_are_counted_by_route_template_never_by_path(client, app) -> None:
    await acme(app)
    before = await scrape(client)
    for name in ("Sales", "Sales", "Other"):
        await client.get(f"/v1/campaigns/{name}/stats", auth=AUTH)
    await client.get("/no/such/path/1")
    await client.get("/no/such/path/2")
    await client.request("BREW", "/v1/campaigns/Sales/stats")
    after = await scrape(client)
    total = "dialbase_http_requests_total"
    stats = "/v1/campaigns/{campaign:path}/stats"
    assert after.minus(before, total, endpoint=stats, method="GET", status="200") == 2
    assert after.minus(before, total, endpoint=stats, method="GET", status="404") == 1
    assert after.minus(before, total, endpoint="unmatched", status="404") == 2
    assert after.minus(before, total, endpoint=stats, method="OTHER", status="405") == 1
    endpoints = after.labels(total, "endpoint")
    assert not any("Sales" in e or "/no/such" in e for e in endpoints)
    latency = "dialbase_http_request_duration_seconds_count"
    assert after.minus(before, latency, endpoint=stats) == 4


async def test_writes_leases_and_outcomes_are_counted(client, app) -> None:
    await acme(app)
    before = await scrape(client)
    for i in range(5):
        assert (await client.post(ADD, json=body(phoneNumber=f"98765000{i:02d}"))).json() == STORED
    await client.post("/v1/campaigns/Sales/start", auth=AUTH)
    leased = (await client.post("/v1/campaigns/Sales/leases", json={"count": 3}, auth=AUTH)).json()
    for lease, outcome in zip(leased["leases"], ("busy", "connected", "connected"), strict=True):
        path = f"/v1/leases/{lease['leaseId']}/outcome"
        assert (await client.post(path, json={"outcome": outcome}, auth=AUTH)).status_code == 200
    after = await scrape(client)
    assert after.minus(before, "dialbase_write_batch_size_sum") == 5
    batches = after.minus(before, "dialbase_write_batch_size_count")
    assert 1 <= batches <= 5
    assert after.minus(before, "dialbase_write_batch_seconds_count") == batches
    assert after.minus(before, "dialbase_leases_total") == 3
    assert after.minus(before, "dialbase_outcomes_total", outcome="busy") == 1
    assert after.minus(before, "dialbase_outcomes_total", outcome="connected") == 2


@pytest.fixture
def settings(backend: Backend) -> Any:
    """Leads are counted at most once an hour here: every count is the first one."""
    return backend.settings(metrics_count_seconds=3600)


@pytest.fixture
def count_queries(app: Any) -> Iterator[list[str]]:
    """The statements that counted leads for /metrics."""
    seen: list[str] = []
    engine = app.services.engine.sync_engine

    def record(conn, cursor, statement, *_args):  # type: ignore[no-untyped-def]
        if "count(leads.id)" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


async def test_leads_by_state_are_one_cached_count_shared_by_concurrent_scrapes(
    client, app, count_queries
) -> None:
    await acme(app)
    await make_campaign(app.services.sessionmaker, "Empty")
    for i in range(3):
        assert (await client.post(ADD, json=body(phoneNumber=f"98765100{i:02d}"))).json() == STORED
    scrapes = await asyncio.gather(*(scrape(client) for _ in range(5)))
    assert len(count_queries) == 1
    for found in scrapes:
        assert found.value("dialbase_leads", account="acme", campaign="Sales", state="pending") == 3
        assert found.value("dialbase_leads", account="acme", campaign="Empty") == 0
        assert found.value("dialbase_campaign_running", account="acme", campaign="Sales") == 0
        assert found.value("dialbase_leads_counted_timestamp_seconds") > 0
    assert (await client.post(ADD, json=body(phoneNumber="9876519999"))).json() == STORED
    later = await scrape(client)
    assert len(count_queries) == 1  # not counted again within DIALBASE_METRICS_COUNT_SECONDS
    assert later.value("dialbase_leads", account="acme", campaign="Sales", state="pending") == 3
    assert len(await all_leads(app.services.sessionmaker)) == 4


async def test_a_lost_database_connection_shows_as_down_and_scrapes_still_answer(
    backend: Backend, client, app
) -> None:
    before = await scrape(client)
    assert before.value("dialbase_database_up") == 1
    with fails_at(app, backend, "SELECT 1"):
        down = await scrape(client)
    assert down.value("dialbase_database_up") == 0
    assert down.minus(before, "dialbase_database_errors_total") == 1
    assert (await scrape(client)).value("dialbase_database_up") == 1


async def test_rate_limit_refusals_are_counted_by_limit(client, app) -> None:
    await acme(app, rate_limit=2)
    before = await scrape(client)
    answers = [await client.post(ADD, json=body(phoneNumber=f"98765200{i:02d}")) for i in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    for _ in range(2):
        assert (
            await client.get("/v1/campaigns/Sales/stats", auth=("acme", "no"))
        ).status_code == 401
    after = await scrape(client)
    assert after.minus(before, "dialbase_rate_limited_total", limit="account") == 1
    assert after.minus(before, "dialbase_rate_limited_total", limit="address") == 0
    assert after.minus(before, "dialbase_http_requests_total", endpoint=ADD, status="429") == 1


async def test_a_hung_redis_is_counted_and_writes_go_on(
    backend: Backend, redis_peer: RedisPeer
) -> None:
    settings = backend.settings(redis_url=redis_peer.url, redis_timeout_ms=100)
    async with running_app(settings) as app, client_for(app) as client:
        await acme(app)
        before = await scrape(client)
        assert (await client.post(ADD, json=body())).json() == STORED
        after = await scrape(client)
        assert after.minus(before, "dialbase_redis_errors_total") >= 1
        assert after.value("dialbase_database_up") == 1
        assert len(await all_leads(app.services.sessionmaker)) == 1


async def test_the_webhook_backlog_and_failed_events_are_gauges(client, app) -> None:
    """``dialbase_webhook_backlog`` (pending events) and ``dialbase_webhook_events`` by
    status, from the outbox as it is (events due in an hour: the dispatcher leaves them)."""
    await acme(app)
    sessions = app.services.sessionmaker
    later = datetime.now(UTC) + timedelta(hours=1)
    async with session_scope(sessions) as session:
        account_id = await session.scalar(select(Account.id).where(Account.username == "acme"))
        for i, status in enumerate(["pending", "pending", "failed"]):
            session.add(
                WebhookEvent(
                    event_id=f"evt_test{i}",
                    webhook_id=1,
                    account_id=account_id,
                    type="lead.added",
                    data="{}",
                    created_at=datetime.now(UTC),
                    status=status,
                    attempts=0,
                    next_attempt_at=later,
                )
            )
    found = await scrape(client)
    assert found.value("dialbase_webhook_backlog") == 2
    assert found.value("dialbase_webhook_events", status="pending") == 2
    assert found.value("dialbase_webhook_events", status="failed") == 1
    assert found.value("dialbase_webhook_events", status="delivered") == 0
