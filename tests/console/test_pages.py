"""The console's pages and forms over the services: campaigns, settings, leads, a lead,
the do-not-call list and the account. Both backends."""

from __future__ import annotations

import asyncio
import html
import re
from typing import Any

from sqlalchemy import select

from dialbase.accounts.models import Account
from dialbase.campaigns.models import Campaign
from dialbase.db import session_scope
from dialbase.dnc.models import DncEntry
from dialbase.imports.models import Import
from dialbase.leads.models import Lead
from dialbase.leads.service import add_lead
from tests.console.conftest import ACME_KEY
from tests.console.helpers import ConsoleUser, field_error


async def _campaign(app: Any, name: str = "Sales") -> Campaign:
    async with session_scope(app.services.sessionmaker) as session:
        found = await session.scalar(select(Campaign).where(Campaign.name == name))
        assert found is not None
        return found


async def _add_leads(app: Any, campaign_id: int, count: int, start: int = 0) -> list[int]:
    async with session_scope(app.services.sessionmaker) as session:
        leads = [
            await add_lead(
                session, campaign_id, f"98765{start + n:05d}", country="IN", name=f"Person {n}"
            )
            for n in range(count)
        ]
        await session.flush()
        return [lead.id for lead in leads]


def _lead_ids(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'/leads/(\d+)">#', page)]


def _next(page: str) -> str | None:
    found = re.search(r'href="([^"]+)" rel="next"', page)
    return found.group(1).replace("&amp;", "&") if found else None


async def test_creating_a_campaign_shows_errors_next_to_fields_then_creates_it(console, acme):
    blank = await acme.post(
        "/console/campaigns", {"name": " ", "dial_type": "Progressive", "routing": "general"}
    )
    assert blank.status_code == 200
    assert field_error(blank.text, "name") == "Give the campaign a name."
    taken = await acme.post(
        "/console/campaigns", {"name": "Sales", "dial_type": "Progressive", "routing": "general"}
    )
    assert taken.status_code == 200
    assert "already has a campaign named 'Sales'" in (field_error(taken.text, "name") or "")
    made = await acme.post(
        "/console/campaigns",
        {"name": "Winter", "dial_type": "Predictive", "routing": "skillwise", "skills": "en, hi"},
    )
    assert made.status_code == 303
    winter = await _campaign(console, "Winter")
    assert made.headers["location"] == f"/console/campaigns/{winter.id}"
    assert (winter.dial_type, winter.routing, winter.skills) == (
        "Predictive",
        "skillwise",
        ["en", "hi"],
    )
    listing = await acme.get("/console/campaigns")
    row = listing.text.split(f'/console/campaigns/{winter.id}">Winter</a>')[1].split("</tr>")[0]
    assert "Predictive" in row and "skillwise" in row and "Stopped" in row


async def test_settings_refuse_bad_values_in_words_and_save_good_ones(console, acme):
    sales = await _campaign(console)
    url = f"/console/campaigns/{sales.id}/settings"
    await acme.get(url)
    good = {
        "agents": "A1, A2",
        "skills": "english",
        "max_attempts": "5",
        "retry_delay": "120",
        "retry_delays": "busy=60",
        "calling_hours": "mon-fri 09:00-20:00",
    }
    bad = await acme.post(url, {**good, "calling_hours": "weekdays", "max_attempts": "0x"})
    assert bad.status_code == 200
    assert "calling hours: cannot read 'weekdays'" in (field_error(bad.text, "calling_hours") or "")
    assert field_error(bad.text, "max_attempts") == "Max attempts: a whole number."
    unchanged = await _campaign(console)
    assert (unchanged.agents, unchanged.max_attempts, unchanged.calling_hours) == ([], 3, None)
    too_many = await acme.post(url, {**good, "max_attempts": "1000"})
    assert field_error(too_many.text, "max_attempts") == "max attempts must be between 1 and 100"
    saved = await acme.post(url, good)
    assert saved.status_code == 303
    after = await _campaign(console)
    assert after.agents == ["A1", "A2"] and after.skills == ["english"]
    assert (after.max_attempts, after.retry_delay_seconds) == (5, 120)
    assert after.retry_delays == {"busy": 60}
    assert after.calling_hours == "mon-fri 09:00-20:00"


async def test_start_and_stop_buttons(console, acme):
    sales = await _campaign(console)
    await acme.get(f"/console/campaigns/{sales.id}")
    assert (await acme.post(f"/console/campaigns/{sales.id}/start")).status_code == 303
    assert (await _campaign(console)).running
    page = await acme.get(f"/console/campaigns/{sales.id}")
    assert "Stop campaign" in page.text
    assert (await acme.post(f"/console/campaigns/{sales.id}/stop")).status_code == 303
    assert not (await _campaign(console)).running


async def test_the_leads_table_pages_by_cursor_and_filters(console, acme):
    sales = await _campaign(console)
    ids = await _add_leads(console, sales.id, 120)
    url: str | None = f"/console/campaigns/{sales.id}/leads"
    seen: list[int] = []
    while url:
        page = await acme.get(url)
        assert page.status_code == 200
        shown = _lead_ids(page.text)
        assert len(shown) <= 50
        seen += shown
        url = _next(page.text)
    assert seen == ids
    by_number = await acme.get(f"/console/campaigns/{sales.id}/leads", params={"q": "09876500007"})
    assert _lead_ids(by_number.text) == [ids[7]]
    by_name = await acme.get(f"/console/campaigns/{sales.id}/leads", params={"q": "person 11"})
    assert _lead_ids(by_name.text) == [ids[11], *ids[110:120]]
    pending = await acme.get(f"/console/campaigns/{sales.id}/leads", params={"state": "pending"})
    assert len(_lead_ids(pending.text)) == 50
    done = await acme.get(f"/console/campaigns/{sales.id}/leads", params={"state": "done"})
    assert _lead_ids(done.text) == []
    forged = await acme.get(f"/console/campaigns/{sales.id}/leads", params={"after": "x1"})
    assert forged.status_code == 422
    assert "not one this console made" in forged.text


async def test_a_leads_detail_shows_its_attempts_and_why_it_waits(console, acme, api):
    sales = await _campaign(console)
    [lead_id] = await _add_leads(console, sales.id, 1)
    await acme.get(f"/console/campaigns/{sales.id}")
    await acme.post(f"/console/campaigns/{sales.id}/start")
    leased = await api.post("/v1/campaigns/Sales/leases", auth=("acme", ACME_KEY))
    [lease] = leased.json()["leases"]
    reported = await api.post(
        f"/v1/leases/{lease['leaseId']}/outcome", json={"outcome": "busy"}, auth=("acme", ACME_KEY)
    )
    assert reported.status_code == 200, reported.text
    page = await acme.get(f"/console/campaigns/{sales.id}/leads/{lead_id}")
    assert page.status_code == 200
    assert "<td>busy</td>" in page.text
    assert "retry scheduled" in page.text
    assert "dialable from" in page.text


async def test_deleting_a_lead_uses_the_deletion_service(console, acme):
    sales = await _campaign(console)
    [lead_id, kept] = await _add_leads(console, sales.id, 2)
    await acme.get(f"/console/campaigns/{sales.id}/leads/{lead_id}")
    answer = await acme.post(f"/console/campaigns/{sales.id}/leads/{lead_id}/delete")
    assert answer.status_code == 200
    assert "Deleted 1 lead of +919876500000" in answer.text
    async with session_scope(console.services.sessionmaker) as session:
        statuses = {
            lead.id: lead.status for lead in await session.scalars(select(Lead).order_by(Lead.id))
        }
    assert statuses == {lead_id: "deleted", kept: "pending"}
    gone = await acme.get(f"/console/campaigns/{sales.id}/leads/{lead_id}")
    assert gone.status_code == 404


async def test_uploading_a_file_shows_counts_and_the_rejected_rows(console, acme):
    sales = await _campaign(console)
    await acme.get(f"/console/campaigns/{sales.id}")
    csv = b"PhoneNumber,Name\n9876543210,Asha\n12,Bad\n9876543211,Ravi\n9876543210,Again\n"
    answer = await acme.client.post(
        f"/console/campaigns/{sales.id}/imports",
        data={"csrf_token": acme.csrf or "", "checkDuplicate": "true"},
        files={"file": ("leads.csv", csv, "text/csv")},
    )
    assert answer.status_code == 303
    url = answer.headers["location"]
    for _ in range(200):
        page = await acme.get(url + "/progress")
        if "Finished" in page.text:
            break
        await asyncio.sleep(0.05)
    assert "Finished: 4 of 4 rows" in page.text
    assert re.search(r'data-count="added"><dt>Added</dt><dd>2<', page.text)
    assert re.search(r'data-count="duplicates"><dt>Duplicates</dt><dd>1<', page.text)
    assert re.search(r'data-count="rejected"><dt>Rejected</dt><dd>1<', page.text)
    assert "<td>3</td><td>12</td>" in page.text
    failed = await acme.get(url + "/failed.csv")
    assert failed.status_code == 200
    assert failed.text.splitlines()[0] == "PhoneNumber,Name,reason"
    assert failed.text.splitlines()[1].startswith("12,Bad,phone number should be numeric")


async def test_an_upload_without_a_phone_column_is_refused_and_queues_nothing(console, acme):
    sales = await _campaign(console)
    await acme.get(f"/console/campaigns/{sales.id}")
    answer = await acme.client.post(
        f"/console/campaigns/{sales.id}/imports",
        data={"csrf_token": acme.csrf or ""},
        files={"file": ("leads.csv", b"Name\nAsha\n", "text/csv")},
    )
    assert answer.status_code == 200
    assert "PhoneNumber" in (field_error(answer.text, "file") or "")
    async with session_scope(console.services.sessionmaker) as session:
        assert list(await session.scalars(select(Import.id))) == []


async def test_the_do_not_call_list_adds_finds_removes_and_imports(console, acme):
    await acme.get("/console/dnc")
    bad = await acme.post("/console/dnc", {"number": "12", "note": ""})
    assert bad.status_code == 200
    assert field_error(bad.text, "number")
    added = await acme.post("/console/dnc", {"number": "09876543210", "note": "asked"})
    assert "+919876543210 is on the list." in added.text
    found = await acme.get("/console/dnc", params={"q": "9876543210"})
    assert "<td>+919876543210</td>" in found.text and "asked" in found.text
    imported = await acme.client.post(
        "/console/dnc/import",
        data={"csrf_token": acme.csrf or ""},
        files={"file": ("numbers.csv", b"phoneNumber\n9876543211\n9876543210\nnope\n", "text/csv")},
    )
    assert "1 added, 1 already listed, 1 not phone numbers" in imported.text
    assert "line 4: not a phone number: 'nope'" in html.unescape(imported.text)
    removed = await acme.post("/console/dnc/remove", {"number": "+919876543210"})
    assert "+919876543210 is off the list." in removed.text
    async with session_scope(console.services.sessionmaker) as session:
        assert list(await session.scalars(select(DncEntry.number))) == ["+919876543211"]


async def test_account_settings_and_a_rotated_key(console, acme, api):
    await acme.get("/console/account")
    bad = await acme.post(
        "/console/account",
        {
            "timezone": "Mars/Base",
            "auth_mode": "BASIC_AUTH",
            "rate_limit": "0",
            "default_country": "IN",
        },
    )
    assert bad.status_code == 200
    assert "unknown time zone 'Mars/Base'" in (field_error(bad.text, "timezone") or "")
    assert "rate limit must be between" in (field_error(bad.text, "rate_limit") or "")
    saved = await acme.post(
        "/console/account",
        {
            "timezone": "Asia/Kolkata",
            "auth_mode": "TOKEN_AUTH",
            "rate_limit": "50",
            "default_country": "",
        },
    )
    assert saved.status_code == 200 and "Saved." in saved.text
    async with session_scope(console.services.sessionmaker) as session:
        account = await session.scalar(select(Account).where(Account.username == "acme"))
        assert account is not None
        assert (account.timezone, account.auth_mode, account.rate_limit) == (
            "Asia/Kolkata",
            "TOKEN_AUTH",
            50,
        )
        assert account.default_country is None
    assert (await api.get("/v1/dnc", auth=("acme", ACME_KEY))).status_code == 200
    rotated = await acme.post("/console/account/key")
    key = re.search(r'<code id="new-key">([^<]+)</code>', rotated.text)
    assert key is not None
    assert (await api.get("/v1/dnc", auth=("acme", ACME_KEY))).status_code == 401
    assert (await api.get("/v1/dnc", auth=("acme", key.group(1)))).status_code == 200
    again = await acme.get("/console/account")
    assert key.group(1) not in again.text  # shown once
    fresh = ConsoleUser(api)
    assert (await fresh.sign_in("acme", ACME_KEY)).status_code == 401


async def test_a_name_search_goes_on_window_after_window(console, acme, monkeypatch):
    monkeypatch.setattr("dialbase.console.service.NAME_WINDOW", 30)
    sales = await _campaign(console)
    ids = await _add_leads(console, sales.id, 100)
    url: str | None = f"/console/campaigns/{sales.id}/leads?q=PERSON+9"
    pages: list[list[int]] = []
    while url:
        page = await acme.get(url)
        pages.append(_lead_ids(page.text))
        url = _next(page.text)
    assert [i for shown in pages for i in shown] == [ids[9], *ids[90:100]]
    assert pages[0] == [ids[9]] and pages[-1] == ids[90:100]  # windows of 30 leads
    assert len(pages) == 4
