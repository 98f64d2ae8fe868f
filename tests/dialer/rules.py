"""Shared by the dialing-rule tests: numbers in known zones, settings, short calls."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from dialbase.accounts.models import Account
from dialbase.accounts.service import bump_revision
from dialbase.campaigns.models import Campaign
from dialbase.db import session_scope
from dialbase.dnc.models import DncEntry
from tests.compat.helpers import URL
from tests.dialer.helpers import AUTH, lease
from tests.factories import body

CHICAGO = "+13125550100"  # America/Chicago
KOLKATA = "+919876543210"  # Asia/Kolkata (Asia/Calcutta in the number's data)
IDAHO = "+12085550100"  # America/Boise or America/Los_Angeles
DND = {"status": "FAIL", "message": "PhoneNumber Added is a DND Number"}


async def configure(
    sessions: Any,
    campaign: str = "Sales",
    *,
    hours: str | None = None,
    retry_delays: dict[str, int] | None = None,
    max_attempts: int | None = None,
    **account: Any,
) -> None:
    """Settings straight in the database, with the revision moved as the CLI moves it."""
    async with session_scope(sessions) as session:
        values: dict[str, Any] = {}
        if hours is not None:
            values["calling_hours"] = hours
        if retry_delays is not None:
            values["retry_delays"] = retry_delays
        if max_attempts is not None:
            values["max_attempts"] = max_attempts
        if values:
            await session.execute(
                update(Campaign).where(Campaign.name == campaign).values(**values)
            )
        if account:
            await session.execute(
                update(Account).where(Account.username == "acme").values(**account)
            )
        await bump_revision(session)


async def add(client: Any, phone: str, campaign: str = "Sales", **fields: Any) -> dict[str, Any]:
    response = await client.post(URL, json=body(phoneNumber=phone, campaignName=campaign, **fields))
    assert response.status_code == 200
    return response.json()


async def lease_all(client: Any, campaign: str = "Sales", **ask: Any) -> list[dict[str, Any]]:
    response = await lease(client, campaign, count=100, **ask)
    assert response.status_code == 200, response.text
    return response.json()["leases"]


async def explain(client: Any, phone: str, campaign: str = "Sales") -> list[dict[str, Any]]:
    response = await client.get(
        f"/v1/campaigns/{campaign}/leads", params={"phoneNumber": phone}, auth=AUTH
    )
    assert response.status_code == 200, response.text
    return response.json()["leads"]


async def list_number(sessions: Any, number: str, expires_at: datetime | None = None) -> None:
    async with session_scope(sessions) as session:
        account = await session.scalar(select(Account).where(Account.username == "acme"))
        assert account is not None
        session.add(DncEntry(account_id=account.id, number=number, expires_at=expires_at))
