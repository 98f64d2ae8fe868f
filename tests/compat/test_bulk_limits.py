"""The bulk endpoint's limits: 5 requests a minute per account (every identified request
counts, whatever its answer), exact across workers with Redis, not broken by a hung Redis;
bodies up to 2 MiB, HTTP 413 beyond."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.compat.test_bulk import (
    CHECK,
    LIMIT_EXHAUSTED,
    URL,
    E,
    assert_queued,
    bulk_app,
    bulk_body,
    imports_of,
    post_bulk,
)
from tests.conftest import REDIS_URL, Backend, RedisPeer, client_for_app, needs_redis
from tests.factories import make_account, make_campaign


async def _setup(app: Any) -> None:
    sessions = app.services.sessionmaker
    await make_account(sessions)
    await make_campaign(sessions)
    await make_account(sessions, "other", "other-secret-key")
    await make_campaign(sessions, "Theirs", username="other")


def assert_exhausted(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == LIMIT_EXHAUSTED
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60


def _statuses(responses: list[httpx.Response]) -> list[int]:
    return [response.status_code for response in responses]


async def test_the_sixth_request_in_a_minute_is_429_and_queues_nothing(backend: Backend):
    async with bulk_app(backend.settings()) as app, client_for_app(app) as client:
        await _setup(app)
        for _ in range(5):
            assert_queued((await post_bulk(client)).json())
        assert_exhausted(await post_bulk(client))
        assert len(await imports_of(app.services.sessionmaker)) == 5
        # Another account has its own budget.
        other = await post_bulk(
            client, userName="other", apiKey="other-secret-key", campaignName="Theirs"
        )
        assert_queued(other.json())


async def test_every_identified_request_counts_whatever_its_answer(backend: Backend):
    async with bulk_app(backend.settings()) as app, client_for_app(app) as client:
        await _setup(app)
        refused = [
            await post_bulk(client, campaignName="Nope"),  # check 5
            await post_bulk(client, bulkData={"map": ["Name"], "data": [["x"]]}),  # check 8
            await post_bulk(client, callBackUrl="ftp://x"),  # check 10
        ]
        assert [r.json() for r in refused] == [CHECK[5], CHECK[8], CHECK[10]]
        # Unidentified requests (checks 1 to 3) do not count against the account.
        assert (await post_bulk(client, apiKey="wrong-key")).json() == CHECK[3]
        assert (await post_bulk(client, userName="")).json() == CHECK[2]
        assert_queued((await post_bulk(client)).json())
        assert_queued((await post_bulk(client)).json())
        assert_exhausted(await post_bulk(client))
        # Over the limit, a request failing an earlier check is answered that check.
        assert (await post_bulk(client, campaignName="Nope")).json() == CHECK[5]
        assert len(await imports_of(app.services.sessionmaker)) == 2


async def test_the_limit_is_a_setting(backend: Backend):
    async with bulk_app(backend.settings(bulk_rate_limit=2)) as app, client_for_app(app) as c:
        await _setup(app)
        assert _statuses([await post_bulk(c) for _ in range(3)]) == [200, 200, 429]


async def test_the_budget_is_apart_from_add_campaign_datas(backend: Backend):
    async with bulk_app(backend.settings()) as app, client_for_app(app) as client:
        await _setup(app)
        for _ in range(5):
            assert_queued((await post_bulk(client)).json())
        added = await client.post(
            "/ca_apis/AddCampaignData",
            json={
                "userName": "acme",
                "apiKey": "acme-secret-key",
                "campaignName": "Sales",
                "phoneNumber": "9876543299",
            },
        )
        assert added.json() == {
            "status": "Success",
            "message": "SuccessFully Updated Progressive Campaign",
        }


async def test_concurrent_requests_are_counted_exactly(backend: Backend):
    async with bulk_app(backend.settings()) as app, client_for_app(app) as client:
        await _setup(app)
        responses = await asyncio.gather(*(post_bulk(client) for _ in range(12)))
        assert sorted(_statuses(list(responses))) == [200] * 5 + [429] * 7
        assert len(await imports_of(app.services.sessionmaker)) == 5


@needs_redis
async def test_the_limit_is_shared_by_workers_through_redis(backend: Backend):
    settings = backend.settings(redis_url=REDIS_URL)
    async with (
        bulk_app(settings) as one,
        bulk_app(settings) as two,
        client_for_app(one) as first,
        client_for_app(two) as second,
    ):
        await _setup(one)
        responses = [await post_bulk(c) for _ in range(4) for c in (first, second)]
        assert _statuses(responses) == [200] * 5 + [429] * 3
        for response in responses[5:]:
            assert_exhausted(response)
        assert len(await imports_of(one.services.sessionmaker)) == 5


async def test_a_hung_redis_does_not_break_the_endpoint(backend: Backend, redis_peer: RedisPeer):
    """The limiter fails open onto in-process counting after one short timeout."""
    settings = backend.settings(redis_url=redis_peer.url, redis_timeout_ms=100)
    async with bulk_app(settings) as app, client_for_app(app) as client:
        await _setup(app)
        started = time.monotonic()
        for _ in range(5):
            assert_queued((await post_bulk(client)).json())
        assert time.monotonic() - started < 5
        assert_exhausted(await post_bulk(client))  # still 5 a minute, counted in process
        assert len(await imports_of(app.services.sessionmaker)) == 5


# Body size ----------------------------------------------------------------------------


def _rows_of(size: int) -> dict[str, Any]:
    """500 rows whose body is about ``size`` bytes."""
    filler = "x" * (size // 500 - 40)
    data = [[str(9000000000 + i), filler] for i in range(500)]
    return {"map": ["PhoneNumber", "Notes"], "data": data}


async def test_a_body_near_2_mib_is_queued(backend: Backend):
    async with bulk_app(backend.settings()) as app, client_for_app(app) as client:
        await _setup(app)
        body = bulk_body(bulkData=_rows_of(2_000_000))
        response = await client.post(URL, json=body)
        assert 1_900_000 < int(response.request.headers["content-length"]) <= 2 * 1024 * 1024
        assert_queued(response.json())


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_body_over_2_mib_is_413_and_queues_nothing(backend: Backend, declared: bool):
    async with bulk_app(backend.settings()) as app, client_for_app(app) as client:
        await _setup(app)
        raw = httpx.Request("POST", URL, json=bulk_body(bulkData=_rows_of(2_300_000))).content
        assert len(raw) > 2 * 1024 * 1024
        content: Any = raw
        if not declared:

            async def chunks() -> Any:
                for start in range(0, len(raw), 65536):
                    yield raw[start : start + 65536]

            content = chunks()
        response = await client.post(
            URL, content=content, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json() == E("The request body is larger than 2097152 bytes.")
        assert await imports_of(app.services.sessionmaker) == []


async def test_the_body_limit_is_a_setting(backend: Backend):
    settings = backend.settings(max_bulk_body_bytes=5 * 1024 * 1024)
    async with bulk_app(settings) as app, client_for_app(app) as client:
        await _setup(app)
        response = await client.post(URL, json=bulk_body(bulkData=_rows_of(4_500_000)))
        assert_queued(response.json())
