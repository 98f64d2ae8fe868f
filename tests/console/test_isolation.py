"""A session of one account can neither read nor change another account's data: every
such page, fragment and form is 404 (as if it did not exist) and nothing changes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from dialbase.accounts.models import Account
from dialbase.campaigns.models import Campaign
from dialbase.db import session_scope
from dialbase.dnc.models import DncEntry
from dialbase.dnc.service import put_entry
from dialbase.imports.models import Import
from dialbase.imports.service import ImportRequest, queue_rows
from dialbase.leads.models import Lead
from dialbase.leads.service import add_lead


async def _others(app: Any) -> dict[str, int]:
    """Account "other": a campaign with a lead, an import, a do-not-call entry."""
    async with session_scope(app.services.sessionmaker) as session:
        other = await session.scalar(select(Account).where(Account.username == "other"))
        assert other is not None
        campaign = await session.scalar(select(Campaign).where(Campaign.name == "Secret"))
        assert campaign is not None
        lead = await add_lead(session, campaign.id, "9876500001", country="IN", name="Hidden")
        await put_entry(session, other, "+919876500009")
        import_id = await queue_rows(
            session,
            ImportRequest(other.id, campaign.id, "bulk", ["PhoneNumber"], False, False),
            [["12"]],
        )
        await session.flush()
        sales = await session.scalar(select(Campaign.id).where(Campaign.name == "Sales"))
        return {"campaign": campaign.id, "lead": lead.id, "import": import_id, "sales": sales}


async def _state(app: Any, ids: dict[str, int]) -> tuple[object, ...]:
    async with session_scope(app.services.sessionmaker) as session:
        campaign = await session.get(Campaign, ids["campaign"])
        lead = await session.get(Lead, ids["lead"])
        imports = await session.scalar(select(Import.id).where(Import.id > ids["import"]))
        dnc = list(await session.scalars(select(DncEntry.number)))
        assert campaign is not None and lead is not None
        return (
            campaign.running,
            list(campaign.agents),
            campaign.max_attempts,
            lead.status,
            imports,
            dnc,
        )


async def test_another_accounts_pages_are_404(console, acme):
    ids = await _others(console)
    c, lead, imp = ids["campaign"], ids["lead"], ids["import"]
    for url in (
        f"/console/campaigns/{c}",
        f"/console/campaigns/{c}/counts",
        f"/console/campaigns/{c}/forecast",
        f"/console/campaigns/{c}/settings",
        f"/console/campaigns/{c}/leads",
        f"/console/campaigns/{c}/leads/{lead}",
        f"/console/campaigns/{ids['sales']}/leads/{lead}",  # own campaign, their lead
        f"/console/imports/{imp}",
        f"/console/imports/{imp}/progress",
        f"/console/imports/{imp}/failed.csv",
    ):
        answer = await acme.get(url)
        assert answer.status_code == 404, url
        assert "Hidden" not in answer.text and "Secret" not in answer.text
    listing = await acme.get("/console/campaigns")
    assert "Secret" not in listing.text
    found = await acme.get("/console/dnc", params={"q": "+919876500009"})
    assert "not on the do-not-call list" in found.text
    assert "+919876500009</td>" not in (await acme.get("/console/dnc")).text


async def test_another_accounts_data_cannot_be_changed(console, acme):
    ids = await _others(console)
    before = await _state(console, ids)
    c, lead = ids["campaign"], ids["lead"]
    await acme.get("/console/campaigns")
    for url, data in (
        (f"/console/campaigns/{c}/start", {}),
        (f"/console/campaigns/{c}/stop", {}),
        (f"/console/campaigns/{c}/leads/{lead}/delete", {}),
        (f"/console/campaigns/{ids['sales']}/leads/{lead}/delete", {}),
        (
            f"/console/campaigns/{c}/settings",
            {"agents": "x", "skills": "", "max_attempts": "9", "retry_delay": "60"},
        ),
    ):
        answer = await acme.post(url, data)
        assert answer.status_code == 404, url
    upload = await acme.client.post(
        f"/console/campaigns/{c}/imports",
        data={"csrf_token": acme.csrf or ""},
        files={"file": ("leads.csv", b"PhoneNumber\n9876500002\n", "text/csv")},
    )
    assert upload.status_code == 404
    removed = await acme.post("/console/dnc/remove", {"number": "+919876500009"})
    assert removed.status_code == 404
    assert await _state(console, ids) == before
