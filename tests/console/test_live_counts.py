"""The live counts cost the database one query per campaign per second per worker, however
many browsers poll them (``console.cache``), and show leads added and leased."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event, select

from dialbase.campaigns.models import Campaign
from dialbase.console.cache import Cached
from dialbase.console.service import state_counts
from dialbase.console.views import console_of
from dialbase.db import session_scope
from dialbase.leads.service import add_lead
from tests.conftest import FakeClock
from tests.console.conftest import ACME_KEY


@contextlib.contextmanager
def counting_queries(app: Any) -> Iterator[list[str]]:
    """The GROUP BY status statements the engine runs meanwhile."""
    seen: list[str] = []

    def before(conn, cursor, statement, *_args):  # type: ignore[no-untyped-def]
        if "GROUP BY leads.status" in statement:
            seen.append(statement)

    engine = app.services.engine.sync_engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


async def _sales(app: Any) -> int:
    async with session_scope(app.services.sessionmaker) as session:
        found = await session.scalar(select(Campaign.id).where(Campaign.name == "Sales"))
        assert found is not None
        return found


def _pending(page: str) -> int:
    found = re.search(r'data-state="pending"><dt>Pending</dt><dd>([\d,]+)<', page)
    assert found
    return int(found.group(1).replace(",", ""))


async def test_many_browsers_polling_cost_one_query_per_second(console, acme):
    campaign_id = await _sales(console)
    url = f"/console/campaigns/{campaign_id}/counts"
    console_of_request(console).counts.forget(campaign_id)  # signing in showed them
    with counting_queries(console) as queries:
        answers = await asyncio.gather(*(acme.client.get(url) for _ in range(30)))
    assert all(a.status_code == 200 for a in answers)
    assert len(queries) == 1


async def test_the_cache_refreshes_once_a_second_single_flight(console):
    campaign_id = await _sales(console)
    clock = FakeClock()
    sessions = console.services.sessionmaker
    cache: Cached[int, dict[str, int]] = Cached(
        lambda c: state_counts(sessions, c), max_age=1.0, clock=clock
    )
    with counting_queries(console) as queries:
        first = await asyncio.gather(*(cache.get(campaign_id) for _ in range(20)))
        assert len(queries) == 1 and first[0]["pending"] == 0
        async with session_scope(sessions) as session:
            await add_lead(session, campaign_id, "9876543210", country="IN")
        clock.now += 0.5
        assert (await cache.get(campaign_id))["pending"] == 0  # still cached
        assert len(queries) == 1
        clock.now += 0.6
        stale = await asyncio.gather(*(cache.get(campaign_id) for _ in range(20)))
        assert all(s["pending"] == 0 for s in stale)  # served while one refresh runs
        await asyncio.sleep(0.2)
        for _ in range(50):
            if len(queries) == 2 and (await cache.get(campaign_id))["pending"] == 1:
                break
            await asyncio.sleep(0.05)
        assert len(queries) == 2
        assert (await cache.get(campaign_id))["pending"] == 1


async def test_a_failed_refresh_reaches_the_callers_waiting():
    calls = 0

    async def load(key: int) -> int:
        nonlocal calls
        calls += 1
        raise ConnectionError("database down")

    cache: Cached[int, int] = Cached(load, max_age=1.0)
    results = await asyncio.gather(*(cache.get(1) for _ in range(5)), return_exceptions=True)
    assert calls == 1
    assert all(isinstance(r, ConnectionError) for r in results)


async def test_counts_follow_leads_added_and_leased(console, acme, api):
    campaign_id = await _sales(console)
    async with session_scope(console.services.sessionmaker) as session:
        for n in range(3):
            await add_lead(session, campaign_id, f"987654321{n}", country="IN")
    console_of_request(console).counts.forget(campaign_id)
    page = await acme.get(f"/console/campaigns/{campaign_id}/counts")
    assert _pending(page.text) == 3
    await acme.get(f"/console/campaigns/{campaign_id}")
    await acme.post(f"/console/campaigns/{campaign_id}/start")
    leased = await api.post(
        "/v1/campaigns/Sales/leases", json={"count": 2}, auth=("acme", ACME_KEY)
    )
    assert len(leased.json()["leases"]) == 2
    for _ in range(40):
        page = await acme.get(f"/console/campaigns/{campaign_id}/counts")
        if _pending(page.text) == 1:
            break
        await asyncio.sleep(0.1)
    assert _pending(page.text) == 1
    assert re.search(r'data-state="leased"><dt>Leased</dt><dd>2<', page.text)


def console_of_request(app: Any) -> Any:
    class _Request:
        def __init__(self) -> None:
            self.app = app.api

    return console_of(_Request())  # type: ignore[arg-type]


async def test_a_slow_count_is_kept_five_times_as_long_as_it_took():
    clock = FakeClock()
    loads: list[float] = []

    async def load(key: int) -> float:
        loads.append(clock.now)
        clock.now += 0.4  # the query took 0.4 s
        return clock.now

    cache: Cached[int, float] = Cached(load, max_age=1.0, clock=clock)
    await cache.get(1)
    clock.now += 1.2  # 1.6 s after the load began: still kept (2 s)
    await cache.get(1)
    assert len(loads) == 1
    clock.now += 0.5  # 2.1 s: refreshed once, the old value served meanwhile
    await cache.get(1)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(loads) == 2
