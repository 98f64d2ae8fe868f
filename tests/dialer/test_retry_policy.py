"""The retry policy: which outcomes dial a lead again, when, and how often."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from dialbase.db import utcnow
from tests.dialer.helpers import (
    add_leads,
    lead_by_phone,
    lease,
    lease_phones,
    move_retries_to_now,
    report,
    running_campaign,
    set_campaign,
)


@pytest.mark.parametrize("outcome", ["no_answer", "busy", "failed"])
async def test_a_retryable_outcome_schedules_the_lead_after_the_retry_delay(
    client, sessionmaker, outcome
):
    await running_campaign(sessionmaker)
    await set_campaign(sessionmaker, retry_delay=120)
    await add_leads(sessionmaker, {"phone_number": "9000000001"})
    [item] = (await lease(client)).json()["leases"]
    before = utcnow()
    response = await report(client, item["leaseId"], outcome, note="left a message")
    after = utcnow()
    answer = response.json()
    assert (response.status_code, answer["leadStatus"], answer["attempt"]) == (200, "retry", 1)
    due = datetime.fromisoformat(answer["nextAttemptAt"])
    assert before + timedelta(seconds=120) <= due <= after + timedelta(seconds=120)
    assert await lease_phones(client) == []  # not due before its time
    await move_retries_to_now(sessionmaker)
    [again] = (await lease(client)).json()["leases"]
    assert again["lead"]["attempt"] == 2


@pytest.mark.parametrize("outcome", ["connected", "invalid_number", "do_not_call"])
async def test_a_final_outcome_finishes_the_lead(client, sessionmaker, outcome):
    await running_campaign(sessionmaker)
    await add_leads(sessionmaker, {"phone_number": "9100000001"})
    [item] = (await lease(client)).json()["leases"]
    answer = (await report(client, item["leaseId"], outcome)).json()
    assert (answer["leadStatus"], answer["nextAttemptAt"]) == ("done", None)
    assert (await lead_by_phone(sessionmaker, "9100000001")).status == "done"


async def test_a_lead_is_dialed_at_most_max_attempts_times(client, sessionmaker):
    await running_campaign(sessionmaker)
    await set_campaign(sessionmaker, max_attempts=2, retry_delay=0)
    await add_leads(sessionmaker, {"phone_number": "9200000001"})
    attempts = []
    for _ in range(3):
        leases = (await lease(client)).json()["leases"]
        for item in leases:
            attempts.append(item["lead"]["attempt"])
            await report(client, item["leaseId"], "no_answer")
    assert attempts == [1, 2]
    lead = await lead_by_phone(sessionmaker, "9200000001")
    assert (lead.status, lead.attempts) == ("done", 2)


async def test_the_defaults_are_three_attempts_ten_minutes_apart(client, sessionmaker):
    await running_campaign(sessionmaker)
    await add_leads(sessionmaker, {"phone_number": "9300000001"})
    seen = []
    for _ in range(4):
        for item in (await lease(client)).json()["leases"]:
            seen.append(item["lead"]["attempt"])
            before = utcnow()
            answer = (await report(client, item["leaseId"], "busy")).json()
            if answer["nextAttemptAt"]:
                due = datetime.fromisoformat(answer["nextAttemptAt"])
                assert before + timedelta(minutes=10) <= due <= utcnow() + timedelta(minutes=10)
        await move_retries_to_now(sessionmaker)
    assert seen == [1, 2, 3]
