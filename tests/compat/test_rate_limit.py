"""Contract "Rate limit": per account once identified, per address before; 429 + Retry-After."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import time_machine

from tests.compat.helpers import (
    CHECK,
    assert_our_error,
    client_for,
    post,
    running_app,
    updated,
)
from tests.conftest import REDIS_URL, needs_redis
from tests.factories import OMIT, all_leads, make_account, make_campaign

SUCCESS = updated("Progressive")
LIMITED = 5


def assert_rate_limited(response) -> None:  # type: ignore[no-untyped-def]
    """Contract: HTTP 429, the shared error shape, and Retry-After in whole seconds >= 1."""
    assert_our_error(response, 429)
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60  # a one-minute window


@pytest.fixture
async def limited(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    """acme (limit 100) and "small", whose rate limit is 5 a minute, each with a campaign."""
    await make_account(sessionmaker)
    await make_campaign(sessionmaker)
    await make_account(sessionmaker, "small", "small-secret-key", rate_limit=LIMITED)
    await make_campaign(sessionmaker, "Small Sales", username="small")


@pytest.fixture(autouse=True)
def mid_minute() -> Iterator[None]:
    """Each test starts 5 s into a clock minute (the clock then runs at its real pace).

    In-process counters weigh two clock minutes across an edge, which lets one request
    more through when a burst straddles it; no test here comes near one.
    """
    now = time.time()
    with time_machine.travel(now - now % 60 + 5):
        yield


SMALL = {"userName": "small", "apiKey": "small-secret-key", "campaignName": "Small Sales"}


@pytest.mark.usefixtures("limited")
async def test_rate_limit_per_account_answers_429_over_the_limit(client, sessionmaker):
    """Contract rate limit: per account (configurable); over it, 429 and nothing stored."""
    responses = [await post(client, phoneNumber=f"90000{i}", **SMALL) for i in range(7)]
    assert [r.status_code for r in responses] == [200] * LIMITED + [429, 429]
    assert all(r.json() == SUCCESS for r in responses[:LIMITED])
    for response in responses[LIMITED:]:
        assert_rate_limited(response)
    assert len(await all_leads(sessionmaker)) == LIMITED


@pytest.mark.usefixtures("limited")
async def test_rate_limit_counts_concurrent_requests_exactly(client, sessionmaker):
    """Contract rate limit: 7 simultaneous requests, exactly 5 get through."""
    responses = await asyncio.gather(
        *(post(client, phoneNumber=f"90000{i}", **SMALL) for i in range(7))
    )
    assert sorted(r.status_code for r in responses) == [200] * LIMITED + [429, 429]
    assert len(await all_leads(sessionmaker)) == LIMITED


@pytest.mark.usefixtures("limited")
async def test_rate_limit_counts_requests_failing_later_checks(client, sessionmaker):
    """Contract rate limit: "every request once its account is identified (check 3 passed)"."""
    failing = [await post(client, phoneNumber="x", **SMALL) for _ in range(LIMITED)]
    assert all(r.json() == CHECK[8] for r in failing)
    assert_rate_limited(await post(client, **SMALL))
    assert await all_leads(sessionmaker) == []


@pytest.mark.usefixtures("limited")
async def test_rate_limit_of_one_account_does_not_block_another(client, sessionmaker):
    """Contract rate limit: the count is per account."""
    for i in range(LIMITED + 1):
        await post(client, phoneNumber=f"90000{i}", **SMALL)
    response = await post(client)
    assert (response.status_code, response.json()) == (200, SUCCESS)


async def test_rate_limit_per_address_for_failed_identification(backend):
    """Contract rate limit: failures of checks 1 to 3 count against the client address.

    Valid requests from that address, and failures from other addresses, still get through.
    """
    async with running_app(backend.settings(ip_rate_limit=3)) as app:
        await make_account(app.services.sessionmaker)
        await make_campaign(app.services.sessionmaker)
        async with client_for(app) as c, client_for(app, "198.51.100.9") as other:
            failing = [
                await post(c, apiKey=OMIT),  # check 1
                await post(c, userName=""),  # check 2
                await post(c, apiKey="wrong-secret-key"),  # check 3
            ]
            assert [r.json() for r in failing] == [CHECK[1], CHECK[2], CHECK[3]]
            assert_rate_limited(await post(c, apiKey="wrong-secret-key"))
            assert_rate_limited(await post(c, userName="nobody"))
            valid = await post(c)
            assert (valid.status_code, valid.json()) == (200, SUCCESS)
            elsewhere = await post(other, apiKey="wrong-secret-key")
            assert (elsewhere.status_code, elsewhere.json()) == (200, CHECK[3])
        assert len(await all_leads(app.services.sessionmaker)) == 1


@needs_redis
async def test_rate_limit_shared_by_workers(backend):
    """Contract rate limit: "shared by every worker process" (Redis; two apps, one count)."""
    settings = backend.settings(redis_url=REDIS_URL)
    async with (
        running_app(settings) as one,
        running_app(settings) as two,
        client_for(one) as first,
        client_for(two) as second,
    ):
        await make_account(
            one.services.sessionmaker, "small", "small-secret-key", rate_limit=LIMITED
        )
        await make_campaign(one.services.sessionmaker, "Small Sales", username="small")
        statuses = [
            (await post(c, phoneNumber=f"90000{i}{n}", **SMALL)).status_code
            for i in range(4)
            for n, c in enumerate((first, second))
        ]
    assert sorted(statuses) == [200] * LIMITED + [429] * 3
