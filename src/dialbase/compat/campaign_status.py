"""Campaign status (``GET /ca_apis/campaignStatus``) and start/stop (``PUT
/ca_apis/setCampaignStatus``): the contract's checks in their order, no web framework.

Both take the parameters already merged and lower-cased (``auth.lower_keys``), the
credentials of the headers and the client address, and return an ``Answer``. Campaigns
are read afresh from the database (not from the worker's cache): a status is a read of
the state now, and start/stop changes it in one transaction.

``Position``: ``RUNNING`` when the campaign runs; else ``COMPLETED`` when it has had leads
and none of them is still open (pending, leased, retry, held or callback, as the queue's
settle would see it now: a queued lead past its expiry is expired); else ``READY``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialbase.accounts.models import AuthMode
from dialbase.campaigns.models import Campaign, Direction
from dialbase.campaigns.service import set_running
from dialbase.compat import answers, fields
from dialbase.compat.answers import Answer
from dialbase.compat.auth import Credentials, FamilyAuth
from dialbase.compat.directory import AccountInfo
from dialbase.db import session_scope
from dialbase.dialer.leasing import CALLBACK, HELD, LEASED, PENDING, RETRY
from dialbase.dialer.queue import lock_for_writing, settled_status
from dialbase.leads.models import Lead

OPEN = (PENDING, LEASED, RETRY, HELD, CALLBACK)  # any other status is finished
STATUS_ENDPOINT = "campaignStatus"
SET_STATUS_ENDPOINT = "setCampaignStatus"


class CampaignStatus:
    def __init__(
        self,
        auth: FamilyAuth,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.auth = auth
        self.sessionmaker = sessionmaker
        self.clock = clock

    async def status(
        self, values: Mapping[str, Any], credentials: Credentials, address: str
    ) -> Answer:
        """§4's checks in order, then the campaign's position."""
        account = await self._status_account(values, credentials, address)
        if isinstance(account, Answer):
            return account
        name = _name(values.get("campaignname"))
        async with session_scope(self.sessionmaker, read_only=True) as session:
            campaign = await _campaign(session, account, name)
            if campaign is None:
                return Answer(answers.NO_RECORD)
            position = await _position(session, campaign, self.clock())
        element = {
            "CampaignID": str(campaign.id),
            "CampaignName": campaign.name,
            "UserName": account.username,
            "Position": position,
        }
        return Answer({"status": "success", "message": [element]})

    async def _status_account(
        self, values: Mapping[str, Any], credentials: Credentials, address: str
    ) -> AccountInfo | Answer:
        """Checks 1 to 4, in this endpoint's own words."""
        if credentials.bearer is not None:
            return await self._bearer_account(values, credentials.bearer, address)
        key: Any = credentials.api_key
        if key is None:
            key = values.get("apikey")
        if key is None:
            return await self.auth.refused(address, answers.API_KEY_MISSING)
        if _blank(values, "username", "campaignname"):
            return await self.auth.refused(address, answers.MANDATORY)
        username = fields.as_text(values["username"]) or ""
        account = await self.auth.key_account(username, fields.as_text(key) or "")
        if account is None:
            return await self.auth.refused(address, answers.NO_RECORD)
        if over := await self.auth.over_limit(account, STATUS_ENDPOINT):
            return over
        if account.auth_mode != AuthMode.BASIC_AUTH:
            return Answer(answers.NOT_BASIC_AUTH)
        return account

    async def _bearer_account(
        self, values: Mapping[str, Any], token: str, address: str
    ) -> AccountInfo | Answer:
        """Bearer checks 1 to 4 of the family, then this endpoint's checks 2 and 3. The
        token names the account: its budget is counted from there on."""
        account = await self.auth.bearer_account(token, address)
        if isinstance(account, Answer):
            return account
        if over := await self.auth.over_limit(account, STATUS_ENDPOINT):
            return over
        if _blank(values, "username", "campaignname"):
            return Answer(answers.MANDATORY)
        if fields.as_text(values["username"]) != account.username:
            return await self.auth.refused(address, answers.NO_RECORD)
        return account

    async def set_status(
        self, values: Mapping[str, Any], credentials: Credentials, address: str
    ) -> Answer:
        """§5: the family's authentication, then the endpoint's checks, then start or stop."""
        account = await self.auth.identify(values, credentials, address)
        if isinstance(account, Answer):
            return account
        if over := await self.auth.over_limit(account, SET_STATUS_ENDPOINT):
            return over
        running = _running(values.get("action"))
        if _blank(values, "campaignname") or running is None or not _process(values):
            return Answer(answers.MANDATORY)
        name = _name(values["campaignname"])
        async with session_scope(self.sessionmaker) as session:
            await lock_for_writing(session)
            campaign = await _campaign(session, account, name)
            if campaign is None:
                return Answer(answers.NO_RECORD)
            if campaign.direction != Direction.OUTBOUND:
                return Answer(answers.STATUS_NOT_OUTBOUND)
            await set_running(session, campaign, running)
            dial_type = campaign.dial_type
        return Answer(answers.status_set(dial_type, running))  # committed


def _blank(values: Mapping[str, Any], *keys: str) -> bool:
    return any(fields.is_blank(values.get(key)) for key in keys)


def _name(value: Any) -> str:
    return (fields.as_text(value) or "").strip()


def _running(action: Any) -> bool | None:
    """``Start`` is True, ``Stop`` False (any case, spaces around ignored); else None."""
    text = action.strip().lower() if isinstance(action, str) else ""
    return {"start": True, "stop": False}.get(text)


def _process(values: Mapping[str, Any]) -> bool:
    """``process`` is JSON ``true`` or the string ``"true"`` (any case)."""
    return fields.check_duplicate(values.get("process"))


async def _campaign(session: AsyncSession, account: AccountInfo, name: str) -> Campaign | None:
    if "\x00" in name:  # no campaign has one; PostgreSQL would refuse the comparison
        return None
    statement = select(Campaign).where(Campaign.account_id == account.id, Campaign.name == name)
    campaign: Campaign | None = await session.scalar(statement)
    return campaign


async def _position(session: AsyncSession, campaign: Campaign, now: datetime) -> str:
    if campaign.running:
        return "RUNNING"
    of_campaign = Lead.campaign_id == campaign.id
    had_leads = await session.scalar(select(exists().where(of_campaign)))
    still_open = await session.scalar(
        select(
            exists().where(
                of_campaign,
                Lead.status.in_(OPEN),
                settled_status(campaign, now).in_(OPEN),
            )
        )
    )
    return "COMPLETED" if had_leads and not still_open else "READY"
