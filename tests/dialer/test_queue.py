"""The queue rules (docs/api.md, "Queue rules"), each pinned on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.dialer.helpers import (
    add_leads,
    lead_by_phone,
    lease,
    lease_phones,
    minutes_from_now,
    move_deadlines_to_past,
    move_retries_to_now,
    report,
    running_campaign,
    set_campaign,
    stats,
)


async def test_higher_priority_is_leased_first(client, sessionmaker):
    await running_campaign(sessionmaker)
    await add_leads(
        sessionmaker,
        {"phone_number": "1000000001", "priority": 1},
        {"phone_number": "1000000003", "priority": 3},
        {"phone_number": "1000000002", "priority": 2},
    )
    assert await lease_phones(client, count=3) == ["1000000003", "1000000002", "1000000001"]


async def test_within_a_priority_the_earlier_lead_is_leased_first(client, sessionmaker):
    await running_campaign(sessionmaker)
    await add_leads(sessionmaker, *({"phone_number": f"200000000{n}"} for n in range(4)))
    assert await lease_phones(client) == ["2000000000"]
    assert await lease_phones(client, count=2) == ["2000000001", "2000000002"]


async def test_a_lead_due_for_retry_queues_behind_earlier_leads_of_its_priority(
    client, sessionmaker
):
    await running_campaign(sessionmaker)
    await set_campaign(sessionmaker, retry_delay=0)
    await add_leads(sessionmaker, {"phone_number": "3000000001"}, {"phone_number": "3000000002"})
    [first] = (await lease(client)).json()["leases"]
    assert (await report(client, first["leaseId"], "busy")).status_code == 200
    assert await lease_phones(client, count=2) == ["3000000002", "3000000001"]


async def test_nothing_due_answers_an_empty_list(client, sessionmaker):
    await running_campaign(sessionmaker)
    response = await lease(client)
    assert (response.status_code, response.json()) == (200, {"leases": []})


async def test_a_stopped_campaign_leases_nothing_and_says_so(client, sessionmaker):
    await running_campaign(sessionmaker)
    await add_leads(sessionmaker, {"phone_number": "4000000001"})
    await set_campaign(sessionmaker, running=False)
    response = await lease(client)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "stopped" in response.json()["detail"]
    assert (await lead_by_phone(sessionmaker, "4000000001")).status == "pending"


async def test_an_agentwise_lead_is_leased_only_to_its_agent(client, sessionmaker):
    await running_campaign(sessionmaker, routing="agentwise", agents=["ann", "bob"])
    await add_leads(
        sessionmaker,
        {"phone_number": "5000000001", "agent_id": "bob", "priority": 9},
        {"phone_number": "5000000002", "agent_id": "ann"},
    )
    assert await lease_phones(client, agentId="ann", count=5) == ["5000000002"]
    assert await lease_phones(client, agentId="carl", count=5) == []
    assert await lease_phones(client, agentId="bob", count=5) == ["5000000001"]


async def test_an_agentwise_campaign_needs_the_agent_id(client, sessionmaker):
    await running_campaign(sessionmaker, routing="agentwise", agents=["ann"])
    response = await lease(client)
    assert response.status_code == 422
    assert "agentId" in response.json()["detail"]


async def test_a_skillwise_lead_is_leased_only_for_its_skill(client, sessionmaker):
    await running_campaign(sessionmaker, routing="skillwise", skills=["sales", "support"])
    await add_leads(
        sessionmaker,
        {"phone_number": "6000000001", "skill": "support"},
        {"phone_number": "6000000002", "skill": "sales"},
    )
    assert await lease_phones(client, skill="sales", count=5) == ["6000000002"]
    assert await lease_phones(client, skill="support", count=5) == ["6000000001"]
    assert (await lease(client)).status_code == 422


async def test_a_general_campaign_ignores_the_agent_and_skill_of_the_request(client, sessionmaker):
    await running_campaign(sessionmaker)
    await add_leads(sessionmaker, {"phone_number": "6100000001", "agent_id": "zoe"})
    assert await lease_phones(client, agentId="ann", skill="x") == ["6100000001"]


async def test_an_expired_lead_is_never_leased_and_is_counted_expired(client, sessionmaker):
    await running_campaign(sessionmaker)
    await add_leads(
        sessionmaker,
        {"phone_number": "7000000001", "priority": 5, "expires_at": minutes_from_now(-1)},
        {"phone_number": "7000000002", "expires_at": minutes_from_now(60)},
    )
    assert await lease_phones(client, count=5) == ["7000000002"]
    assert (await lead_by_phone(sessionmaker, "7000000001")).status == "expired"
    assert (await stats(client))["leads"]["expired"] == 1


async def test_a_lead_expiring_while_waiting_for_its_retry_is_not_leased(client, sessionmaker):
    await running_campaign(sessionmaker)
    await add_leads(sessionmaker, {"phone_number": "7100000001", "expires_at": minutes_from_now(5)})
    [item] = (await lease(client)).json()["leases"]
    await report(client, item["leaseId"], "no_answer")
    await move_retries_to_now(sessionmaker)
    await _expire_all(sessionmaker)
    assert await lease_phones(client) == []
    assert (await stats(client))["leads"]["expired"] == 1


async def _expire_all(sessionmaker) -> None:
    from sqlalchemy import update

    from dialbase.db import session_scope
    from dialbase.leads.models import Lead

    async with session_scope(sessionmaker) as session:
        await session.execute(update(Lead).values(expires_at=minutes_from_now(-1)))


async def test_a_lapsed_lease_returns_its_lead_and_the_attempt_counts(client, sessionmaker):
    await running_campaign(sessionmaker)
    await add_leads(sessionmaker, {"phone_number": "8000000001"})
    [first] = (await lease(client, leaseSeconds=1)).json()["leases"]
    assert await lease_phones(client) == []  # held by the lease
    await move_deadlines_to_past(sessionmaker)
    [second] = (await lease(client)).json()["leases"]
    assert (first["lead"]["attempt"], second["lead"]["attempt"]) == (1, 2)
    assert second["leaseId"] != first["leaseId"]
    assert (await report(client, first["leaseId"], "connected")).status_code == 409
    assert (await stats(client))["leases"]["lapsed"] == 1


async def test_a_lease_lapsing_on_the_last_attempt_finishes_its_lead(client, sessionmaker):
    await running_campaign(sessionmaker)
    await set_campaign(sessionmaker, max_attempts=1)
    await add_leads(sessionmaker, {"phone_number": "8100000001"})
    assert await lease_phones(client) == ["8100000001"]
    await move_deadlines_to_past(sessionmaker)
    assert await lease_phones(client) == []
    lead = await lead_by_phone(sessionmaker, "8100000001")
    assert (lead.status, lead.attempts) == ("done", 1)
