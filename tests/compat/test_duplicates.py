"""Contract checks 15 and 16: the duplicate check, exact under concurrency."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import update

from dialbase.db import session_scope
from dialbase.leads.models import Lead
from tests.compat.helpers import (
    CHECK,
    UPDATED_ROUTED,
    answer,
    assert_rejected,
    client_for,
    running_app,
    started,
    updated,
)
from tests.factories import (
    all_leads,
    campaign_running,
    leads_of,
    make_account,
    make_campaign,
    set_campaign_running,
)

pytestmark = pytest.mark.usefixtures("routed")

SUCCESS = updated("Progressive")
DUP = {"checkDuplicate": True}


async def test_duplicate_check_on_finds_the_number(client, sessionmaker):
    """Contract check 16: the check on and the number held: Number Already Exist."""
    assert await answer(client, **DUP) == SUCCESS
    await assert_rejected(client, sessionmaker, 16, **DUP)
    assert len(await leads_of(sessionmaker)) == 1


async def test_duplicate_check_off_stores_the_number_again(client, sessionmaker):
    """Contract inputs, checkDuplicate: off, the same number is stored again."""
    assert await answer(client) == SUCCESS
    assert await answer(client, checkDuplicate=False) == SUCCESS
    assert [lead.phone_number for lead in await leads_of(sessionmaker)] == ["9876543210"] * 2


async def test_duplicate_number_stored_with_check_off_is_found_later(client, sessionmaker):
    """Contract check 16, "holds this phone number (in any state)": however it was stored."""
    for _ in range(2):
        assert await answer(client, checkDuplicate="false") == SUCCESS
    await assert_rejected(client, sessionmaker, 16, **DUP)
    assert len(await leads_of(sessionmaker)) == 2


@pytest.mark.parametrize("status", ["leased", "retry", "done"])
async def test_duplicate_found_whatever_the_leads_state(client, sessionmaker, status):
    """Contract check 16, "(in any state)": a lead already dialled still holds its number."""
    assert await answer(client) == SUCCESS
    async with session_scope(sessionmaker) as session:
        await session.execute(update(Lead).values(status=status, attempts=3))
    await assert_rejected(client, sessionmaker, 16, **DUP)


async def test_duplicate_same_number_different_name(client, sessionmaker):
    """Contract check 16 (seed "same number and different name"): Number Already Exist."""
    assert await answer(client, Name="Asha") == SUCCESS
    await assert_rejected(client, sessionmaker, 16, Name="Ravi", **DUP)
    [lead] = await leads_of(sessionmaker)
    assert lead.name == "Asha"


async def test_duplicate_same_name_different_number_is_stored(client, sessionmaker):
    """Contract check 16 is about numbers only (seed "same name to a different number")."""
    assert await answer(client, Name="Asha", **DUP) == SUCCESS
    assert await answer(client, Name="Asha", phoneNumber="9876543211", **DUP) == SUCCESS
    assert len(await leads_of(sessionmaker)) == 2


async def test_duplicate_in_another_campaign_is_not_a_duplicate(client, sessionmaker):
    """Contract check 16, "the campaign already holds": other campaigns do not count."""
    await make_campaign(sessionmaker, "Renewals")
    await make_account(sessionmaker, "globex", "globex-secret-key")
    await make_campaign(sessionmaker, "Sales", username="globex")
    assert await answer(client, **DUP) == SUCCESS
    assert await answer(client, campaignName="Renewals", **DUP) == SUCCESS
    globex = {"userName": "globex", "apiKey": "globex-secret-key"}
    assert await answer(client, **globex, **DUP) == SUCCESS
    assert len(await all_leads(sessionmaker)) == 3


@pytest.mark.parametrize(
    ("first", "again"),
    [(9876543210, "9876543210"), ("9876543210", " 9876543210 "), ("9876543210", 9876543210)],
    ids=["int-then-string", "string-then-padded", "string-then-int"],
)
async def test_duplicate_number_compared_as_trimmed_text(client, sessionmaker, first, again):
    """Contract check 16 with check 8's reading: integers and padded strings are one number."""
    assert await answer(client, phoneNumber=first) == SUCCESS
    await assert_rejected(client, sessionmaker, 16, phoneNumber=again, **DUP)


async def test_duplicate_plus_prefix_is_another_number(client, sessionmaker):
    """Contract silent on normalising; project choice: "+91..." and "91..." differ as sent."""
    assert await answer(client, phoneNumber="919876543210") == SUCCESS
    assert await answer(client, phoneNumber="+919876543210", **DUP) == SUCCESS


async def test_duplicate_with_start_leaves_campaign_stopped(client, sessionmaker):
    """Contract "nothing changes": a duplicate with action=start does not start the campaign."""
    assert await answer(client) == SUCCESS
    await assert_rejected(client, sessionmaker, 16, action="start", **DUP)
    assert await campaign_running(sessionmaker) is False


async def test_duplicate_with_stop_leaves_campaign_running(client, sessionmaker):
    """Contract "nothing changes": a duplicate with action=stop does not stop the campaign."""
    assert await answer(client) == SUCCESS
    await set_campaign_running(sessionmaker)
    await assert_rejected(client, sessionmaker, 16, action="stop", **DUP)
    assert await campaign_running(sessionmaker) is True


async def test_duplicate_skillwise_any_skill_is_existed(client, sessionmaker):
    """Contract check 15: held in a skill-wise campaign, whatever the skill: Already Existed."""
    fields = {"campaignName": "Skills", **DUP}
    assert await answer(client, skill="english", **fields) == UPDATED_ROUTED
    await assert_rejected(client, sessionmaker, 15, skill="hindi", **fields)


async def test_duplicate_agentwise_is_exist(client, sessionmaker):
    """Contract check 16: agent-wise campaigns answer Number Already Exist."""
    fields = {"campaignName": "Agents", **DUP}
    assert await answer(client, agentId="A100", **fields) == UPDATED_ROUTED
    await assert_rejected(client, sessionmaker, 16, agentId="A200", **fields)


RACERS = 50


@pytest.mark.parametrize(
    ("fields", "success", "duplicate"),
    [
        ({}, SUCCESS, CHECK[16]),
        ({"campaignName": "Agents", "agentId": "A100"}, UPDATED_ROUTED, CHECK[16]),
        ({"campaignName": "Skills", "skill": "hindi"}, UPDATED_ROUTED, CHECK[15]),
    ],
    ids=["general", "agentwise", "skillwise"],
)
async def test_concurrent_adds_of_one_new_number_store_it_once(
    client, sessionmaker, fields, success, duplicate
):
    """Contract "under concurrency the duplicate check is exact": one lead, one success."""
    replies = await asyncio.gather(*(answer(client, **DUP, **fields) for _ in range(RACERS)))
    counted = Counter(reply["message"] for reply in replies)
    assert counted == {success["message"]: 1, duplicate["message"]: RACERS - 1}
    assert success in replies and all(r in (success, duplicate) for r in replies)
    campaign = fields.get("campaignName", "Sales")
    assert [lead.phone_number for lead in await leads_of(sessionmaker, campaign)] == ["9876543210"]


async def test_concurrent_start_applies_once_with_its_lead(client, sessionmaker):
    """Contract concurrency and "nothing changes": only the one stored lead starts it."""
    replies = await asyncio.gather(*(answer(client, action="start", **DUP) for _ in range(RACERS)))
    assert replies.count(started("Progressive")) == 1
    assert replies.count(CHECK[16]) == RACERS - 1
    assert await campaign_running(sessionmaker) is True


async def test_concurrent_adds_across_two_workers_store_once(backend, acme, sessionmaker):
    """Contract concurrency, across processes: two apps on one database race too."""
    async with (
        running_app(backend.settings()) as one,
        running_app(backend.settings()) as two,
        client_for(one) as first,
        client_for(two) as second,
    ):
        replies = await asyncio.gather(
            *(answer(c, **DUP) for _ in range(RACERS // 2) for c in (first, second))
        )
    assert replies.count(SUCCESS) == 1
    assert replies.count(CHECK[16]) == RACERS - 1
    assert len(await leads_of(sessionmaker)) == 1


async def test_concurrent_adds_of_different_numbers_store_each(client, sessionmaker):
    """Contract "stored durably": a batch of different numbers stores every one of them."""
    numbers = [f"98765{i:05d}" for i in range(RACERS)]
    replies = await asyncio.gather(*(answer(client, phoneNumber=n, **DUP) for n in numbers))
    assert replies == [SUCCESS] * RACERS
    stored = sorted(lead.phone_number for lead in await leads_of(sessionmaker))
    assert stored == numbers
