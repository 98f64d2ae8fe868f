"""A deleted lead leaves at once: the queue, exports, explain and forecast, duplicate
checks; its attempts and outcomes stay in the statistics; an outcome for its lease is
409. And ``DELETE /v1/campaigns/{c}/leads?phoneNumber=``, on both backends."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import orjson
import pytest
from sqlalchemy import select

from dialbase.accounts.models import ConfigRevision
from dialbase.campaigns.models import Campaign
from dialbase.db import asyncpg_dsn, session_scope, utcnow
from dialbase.leads.batch import NewLead
from dialbase.leads.models import CampaignNumber, Lead
from dialbase.leads.service import iter_leads
from dialbase.leads.stores.postgres import _BATCH_SQL, _lead_arrays
from tests.conftest import Backend, needs_postgres
from tests.dialer.helpers import AUTH, lease_phones, report, running_campaign, stats
from tests.dialer.rules import add, configure, explain, lease_all

STORED = {"status": "Success", "message": "SuccessFully Updated Progressive Campaign"}
DUPLICATE = {"status": "SUCCESS", "message": "Number Already Exist"}
DELETED = {"status": "Success", "message": "Deleted Successfully"}
NUMBER = "9876543210"


async def delete_v1(
    client: httpx.AsyncClient, phone: str, campaign: str = "Sales", **params: Any
) -> httpx.Response:
    return await client.delete(
        f"/v1/campaigns/{campaign}/leads", params={"phoneNumber": phone, **params}, auth=AUTH
    )


async def delete_compat(client: httpx.AsyncClient, phone: str) -> dict[str, Any]:
    body = {"userName": "acme", "campaignName": "Sales", "phoneNumber": phone}
    response = await client.request(
        "DELETE",
        "/ca_apis/deleteCampaignData",
        content=orjson.dumps(body),
        headers={"apiKey": "acme-secret-key", "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def guards(sessions) -> list[str]:  # type: ignore[no-untyped-def]
    async with session_scope(sessions) as session:
        return list(await session.scalars(select(CampaignNumber.phone_number)))


async def exported(sessions) -> list[str]:  # type: ignore[no-untyped-def]
    async with session_scope(sessions) as session:
        campaign = await session.scalar(select(Campaign).where(Campaign.name == "Sales"))
        assert campaign is not None
        return [
            str(row["phoneNumber"]) async for row in iter_leads(session, campaign, ZoneInfo("UTC"))
        ]


# /v1 ----------------------------------------------------------------------------------


async def test_v1_delete_answers_the_count_and_404_when_nothing_matched(client, sessionmaker):
    await running_campaign(sessionmaker)
    assert await add(client, NUMBER) == STORED
    assert await add(client, NUMBER, Name="Asha") == STORED
    response = await delete_v1(client, NUMBER, name="asha")
    assert (response.status_code, response.json()) == (
        200,
        {"campaign": "Sales", "phoneNumber": NUMBER, "deleted": 1},
    )
    response = await delete_v1(client, f" {NUMBER} ")
    assert response.json() == {"campaign": "Sales", "phoneNumber": NUMBER, "deleted": 1}
    response = await delete_v1(client, NUMBER)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "campaign 'Sales' has no lead of 9876543210 to delete",
    }


async def test_v1_delete_refuses_bad_requests_with_problems(client, sessionmaker):
    await running_campaign(sessionmaker)
    assert await add(client, NUMBER) == STORED
    wrong = await client.delete(
        "/v1/campaigns/Sales/leads",
        params={"phoneNumber": NUMBER},
        auth=httpx.BasicAuth("acme", "nope"),
    )
    assert wrong.status_code == 401 and wrong.json()["detail"] == "wrong user name or API key"
    bad = await delete_v1(client, "12ab")
    assert (bad.status_code, bad.json()["detail"]) == (
        422,
        "phoneNumber: + optional, then 3 to 16 digits",
    )
    blank_name = await delete_v1(client, NUMBER, name=" ")
    assert blank_name.status_code == 422
    unknown = await delete_v1(client, NUMBER, campaign="Nope")
    assert unknown.status_code == 404
    missing = await client.delete("/v1/campaigns/Sales/leads", auth=AUTH)
    assert missing.status_code == 422
    assert len(await exported(sessionmaker)) == 1


# Leaving at once ----------------------------------------------------------------------


async def test_a_deleted_lead_leaves_the_queue_export_explain_and_forecast(client, sessionmaker):
    await running_campaign(sessionmaker)
    assert await add(client, NUMBER) == STORED
    assert await add(client, "9000000001") == STORED
    assert len(await explain(client, NUMBER)) == 1
    assert (await delete_v1(client, NUMBER)).status_code == 200
    assert await exported(sessionmaker) == ["9000000001"]
    assert await explain(client, NUMBER) == []
    forecast = (await client.get("/v1/campaigns/Sales/forecast", auth=AUTH)).json()
    assert forecast["queued"] == 1
    assert await lease_phones(client, count=10) == ["9000000001"]
    counts = (await stats(client))["leads"]
    assert (counts["total"], counts["pending"], counts["leased"]) == (1, 0, 1)


async def test_a_leased_lead_deleted_refuses_its_outcome_with_409(client, sessionmaker):
    """Its attempt and lease stay in the statistics; the outcome changes nothing."""
    await running_campaign(sessionmaker)
    assert await add(client, NUMBER) == STORED
    [leased] = await lease_all(client)
    assert await delete_compat(client, NUMBER) == DELETED
    response = await report(client, leased["leaseId"], "no_answer")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == (
        f"lease {leased['leaseId']!r}: its lead was deleted, so the outcome was not recorded"
        " (the lease still counts as an attempt)"
    )
    async with session_scope(sessionmaker) as session:
        lead = await session.scalar(select(Lead))
        assert lead is not None
        assert (lead.status, lead.attempts, lead.closed_reason) == ("deleted", 1, None)
    figures = await stats(client)
    assert figures["attempts"] == 1
    assert figures["leads"]["total"] == figures["leads"]["leased"] == 0
    assert figures["leases"]["no_answer"] == 0
    assert await lease_phones(client) == []


async def test_outcomes_reported_before_deletion_stay_in_the_statistics(client, sessionmaker):
    await running_campaign(sessionmaker)
    assert await add(client, NUMBER) == STORED
    [leased] = await lease_all(client)
    assert (await report(client, leased["leaseId"], "connected")).status_code == 200
    assert await delete_compat(client, NUMBER) == DELETED
    figures = await stats(client)
    assert (figures["attempts"], figures["connects"], figures["leases"]["connected"]) == (1, 1, 1)
    assert figures["leads"]["done"] == figures["leads"]["total"] == 0
    # A second report of the same lease is still "already reported".
    again = await report(client, leased["leaseId"], "connected")
    assert again.status_code == 409 and "already reported" in again.json()["detail"]


# Duplicate checks ---------------------------------------------------------------------


async def test_a_deleted_number_can_be_added_again_with_the_duplicate_check(client, sessionmaker):
    await running_campaign(sessionmaker)
    await configure(sessionmaker, default_country="IN")
    assert await add(client, "+91" + NUMBER) == STORED
    assert await add(client, NUMBER, checkDuplicate=True) == DUPLICATE
    assert await delete_compat(client, NUMBER) == DELETED
    assert await guards(sessionmaker) == []
    assert await add(client, "0" + NUMBER, checkDuplicate=True) == STORED
    assert await add(client, NUMBER, checkDuplicate=True) == DUPLICATE
    assert await exported(sessionmaker) == ["0" + NUMBER]


async def test_concurrent_adds_and_deletes_keep_the_guard_exact(
    backend: Backend, client, sessionmaker
):
    """Adds with and without the duplicate check race deletions of the same numbers
    (PostgreSQL: on several connections at once). Afterwards a number is guarded exactly
    when the campaign has a live lead of it, and the check agrees."""
    await running_campaign(sessionmaker)
    numbers = [f"90000000{n:02d}" for n in range(8)]

    async def one_round(number: str, n: int) -> None:
        tasks = [
            add(client, number),
            add(client, number, checkDuplicate=True),
            delete_v1(client, number),
            add(client, number, checkDuplicate=True),
        ]
        if n % 2:
            tasks.reverse()
        await asyncio.gather(*tasks)

    for round_ in range(3):
        await asyncio.gather(*(one_round(number, round_) for number in numbers))
    async with session_scope(sessionmaker) as session:
        live = set(await session.scalars(select(Lead.phone_e164).where(Lead.status != "deleted")))
    assert set(await guards(sessionmaker)) == live
    for number in numbers:
        expected = DUPLICATE if number in live else STORED
        assert await add(client, number, checkDuplicate=True) == expected


@needs_postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_deletion_waits_for_a_batch_adding_the_number_and_deletes_its_lead_too(
    backend: Backend, client, sessionmaker
):
    """The race the guard lock closes: a write batch adding a number whose guard exists
    (duplicate check off) is open when the deletion starts. The deletion waits for it,
    then deletes its lead too, so the number has no live lead and no guard; without the
    lock the batch's lead would stay live and unguarded, and a later add with the
    duplicate check would store a second live lead."""
    await running_campaign(sessionmaker)
    assert await add(client, NUMBER) == STORED
    async with session_scope(sessionmaker) as session:
        campaign_id = await session.scalar(select(Campaign.id))
        revision = await session.scalar(select(ConfigRevision.value))
    assert campaign_id is not None and revision is not None
    lead = NewLead(
        campaign_id=campaign_id,
        revision=revision,
        phone_number=NUMBER,
        name="In flight",
        priority=1,
        expires_at=None,
        agent_id=None,
        skill=None,
        extra={},
        check_duplicate=False,
        action=None,
        phone_e164=NUMBER,
        time_zones="UTC",
    )
    conn = await asyncpg.connect(asyncpg_dsn(backend.database_url))
    try:
        batch = conn.transaction()
        await batch.start()
        await conn.fetchrow(_BATCH_SQL, *_lead_arrays([lead]), utcnow(), str(uuid.uuid4()))
        deletion = asyncio.create_task(delete_v1(client, NUMBER))
        await asyncio.sleep(0.5)
        assert not deletion.done()  # waiting for the batch's lock on the guard
        await batch.commit()
    finally:
        await conn.close()
    response = await deletion
    assert response.json() == {"campaign": "Sales", "phoneNumber": NUMBER, "deleted": 2}
    assert await guards(sessionmaker) == []
    assert await add(client, NUMBER, checkDuplicate=True) == STORED
    assert await add(client, NUMBER, checkDuplicate=True) == DUPLICATE
