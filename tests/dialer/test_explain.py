"""Why not, and when: the explain and forecast answers, checked against what the queue
then does at the predicted times."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from typer.testing import CliRunner

from dialbase.cli import app
from dialbase.db import session_scope, utcnow
from dialbase.leads.models import Lead
from tests.dialer.helpers import AUTH, lease_phones, report, running_campaign
from tests.dialer.rules import (
    CHICAGO,
    IDAHO,
    KOLKATA,
    add,
    configure,
    explain,
    lease_all,
    list_number,
)

TUESDAY_4AM = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)  # Kolkata 09:30, Chicago 22:00 (Mon)


async def forecast(client: Any, campaign: str = "Sales") -> dict[str, Any]:
    response = await client.get(f"/v1/campaigns/{campaign}/forecast", auth=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_explain_says_why_not_and_from_when_and_the_queue_agrees(client, sessionmaker, clock):
    await running_campaign(sessionmaker)
    await configure(sessionmaker, hours="mon-sun 09:00-20:00")
    await add(client, CHICAGO)
    clock.at = TUESDAY_4AM
    [lead] = await explain(client, CHICAGO)
    opens = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    assert lead["status"] == "pending" and lead["timeZones"] == ["America/Chicago"]
    assert lead["dialable"] is False and lead["nextDialableAt"] == z(opens)
    assert [(r["code"], r["until"]) for r in lead["reasons"]] == [
        ("outside_calling_hours", z(opens))
    ]
    clock.at = opens - timedelta(seconds=1)
    assert await lease_phones(client) == []
    clock.at = opens
    [again] = await explain(client, CHICAGO)
    assert (again["dialable"], again["reasons"], again["nextDialableAt"]) == (True, [], z(opens))
    assert await lease_phones(client) == [CHICAGO]
    clock.at = utcnow()  # the lease's deadline is on the real clock
    [leased] = await explain(client, CHICAGO)
    assert leased["reasons"][0]["code"] == "leased"  # (then calling hours, by the real clock)


async def test_explain_names_each_blocking_reason(client, sessionmaker, clock):
    await running_campaign(sessionmaker)
    await configure(sessionmaker, max_attempts=1)
    await add(client, KOLKATA)
    await add(client, CHICAGO)
    await add(client, IDAHO)
    clock.at = utcnow()
    items = {x["lead"]["phoneNumber"]: x["leaseId"] for x in await lease_all(client)}
    await report(client, items[KOLKATA], "busy")  # attempts used up
    await report(client, items[CHICAGO], "connected")
    await list_number(sessionmaker, "+12085550100")
    async with session_scope(sessionmaker) as session:  # Idaho's lease lapsed
        await session.execute(update(Lead).where(Lead.status == "leased").values(due_at=utcnow()))
    await configure(sessionmaker, max_attempts=3)
    clock.at = utcnow()
    codes = {}
    for phone in (KOLKATA, CHICAGO, IDAHO):
        [lead] = await explain(client, phone)
        codes[phone] = ([r["code"] for r in lead["reasons"]], lead["nextDialableAt"])
    assert codes == {
        KOLKATA: (["attempts_used_up"], None),
        CHICAGO: (["completed"], None),
        IDAHO: (["do_not_call"], None),
    }
    await client.post("/v1/campaigns/Sales/stop", auth=AUTH)
    await add(client, "+919876543211")
    [stopped] = await explain(client, "+919876543211")
    assert [r["code"] for r in stopped["reasons"]] == ["campaign_stopped"]
    assert stopped["dialable"] is False and stopped["nextDialableAt"] is not None


async def test_the_forecast_counts_what_the_queue_then_hands_out_hour_by_hour(
    client, sessionmaker, clock
):
    await running_campaign(sessionmaker)
    await configure(sessionmaker, hours="mon-sun 09:00-20:00")
    for n in range(3):
        await add(client, f"+91987654321{n}")  # Kolkata: open now
    for n in range(2):
        await add(client, f"+1312555010{n}")  # Chicago: opens 15:00 UTC
    await add(client, IDAHO)  # Boise and Los Angeles: both open from 17:00 UTC
    await add(client, "+12085550101", timeZone="Europe/London")  # opens 09:00 UTC
    clock.at = TUESDAY_4AM
    found = await forecast(client)
    assert (found["queued"], found["dialableNow"]) == (7, 3)
    assert found["blocked"] == {"outside_calling_hours": 4}
    predicted = {h["start"]: h["becomeDialable"] for h in found["nextHours"] if h["becomeDialable"]}
    hour = {n: z(TUESDAY_4AM + timedelta(hours=n)) for n in range(24)}
    assert predicted == {hour[5]: 1, hour[11]: 2, hour[13]: 1}
    assert (found["later"], found["never"]) == (0, 0)
    assert len(await lease_all(client)) == 3
    for start, count in predicted.items():
        begin = datetime.fromisoformat(start)
        clock.at = begin - timedelta(seconds=1)
        assert await lease_all(client) == []
        clock.at = begin + timedelta(minutes=59)
        assert len(await lease_all(client)) == count


async def test_a_stopped_campaigns_dialable_leads_are_counted_as_stopped(
    client, sessionmaker, clock
):
    await running_campaign(sessionmaker)
    await add(client, KOLKATA)
    await client.post("/v1/campaigns/Sales/stop", auth=AUTH)
    clock.at = utcnow()
    found = await forecast(client)
    assert (found["running"], found["dialableNow"], found["blocked"]) == (
        False,
        0,
        {"campaign_stopped": 1},
    )


async def test_explain_refuses_a_malformed_number_and_unknown_campaigns(client, sessionmaker):
    await running_campaign(sessionmaker)
    response = await client.get(
        "/v1/campaigns/Sales/leads", params={"phoneNumber": "12ab"}, auth=AUTH
    )
    assert response.status_code == 422
    response = await client.get(
        "/v1/campaigns/Nope/leads", params={"phoneNumber": "123456"}, auth=AUTH
    )
    assert response.status_code == 404
    assert await explain(client, "5550000") == []


async def test_the_cli_explains_and_forecasts_as_the_api_does(client, sessionmaker, backend):
    await running_campaign(sessionmaker)
    await configure(sessionmaker, hours="mon-sun 00:00-00:01")  # one minute a day
    await add(client, KOLKATA)
    url = ("--database-url", backend.database_url)
    explained = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["leads", "explain", "--username", "acme", "--campaign", "Sales"]
        + [KOLKATA, "--json", *url],
    )
    assert explained.exit_code == 0, explained.output
    api = await explain(client, KOLKATA)
    [lead] = json.loads(explained.output)
    assert [r["code"] for r in lead["reasons"]] == [r["code"] for r in api[0]["reasons"]]
    assert lead["nextDialableAt"] == api[0]["nextDialableAt"]
    shown = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["campaign", "forecast", "--username", "acme", "--name", "Sales", *url],
    )
    assert shown.exit_code == 0, shown.output
    assert "blocked.outside_calling_hours  1" in shown.output
    bad = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["leads", "explain", "--username", "acme", "--campaign", "Sales"] + ["98a", *url],
    )
    assert (bad.exit_code, bad.output.strip()) == (
        1,
        "error: the number must be + optional, then 3 to 16 digits",
    )
