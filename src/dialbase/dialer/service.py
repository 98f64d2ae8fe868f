"""Leasing leads to dialers, their outcomes, the retry policy. No web framework here.

Retry policy (per campaign, ``dialbase campaign update``): ``max_attempts`` (default 3)
dial attempts per lead, ``retry_delay_seconds`` (default 600) between them. After
``no_answer``, ``busy`` or ``failed`` the lead is due again after the delay while
attempts remain, else done; ``connected``, ``invalid_number`` and ``do_not_call``
finish it. A lease not reported by its deadline returns its lead to the queue at once;
that attempt counts.

``Dialer`` checks a request, finds the account's campaign in the worker's cache
(``compat.directory``) and hands the work to the queue store of the backend
(``dialer.stores``), which applies the rules of ``dialer.leasing`` in one transaction.
"""

from __future__ import annotations

import re

from sqlalchemy.ext.asyncio import AsyncSession

from dialbase.accounts.models import Account
from dialbase.campaigns.models import Campaign, Routing
from dialbase.campaigns.service import get_account_campaign, set_running
from dialbase.compat.directory import AccountInfo, CampaignInfo, Directory
from dialbase.dialer.leasing import (
    LeaseAsk,
    LeasedLead,
    OutcomeAsk,
    QueueStore,
    Refused,
    Report,
    Stale,
    Stopped,
)
from dialbase.dialer.models import RETRYABLE, Outcome
from dialbase.dialer.queue import lock_for_writing
from dialbase.errors import Conflict, Invalid, NotFound, ServiceUnavailable, Unauthorized

MAX_COUNT = 100
MIN_LEASE_SECONDS = 1
MAX_LEASE_SECONDS = 3600
DEFAULT_LEASE_SECONDS = 300
MAX_NOTE_CHARS = 1000
MAX_NAME_CHARS = 255
OUTCOMES = ", ".join(o.value for o in Outcome)


def check_text(**values: str | None) -> None:
    """PostgreSQL cannot store NUL characters; refuse them before they get there."""
    for field, value in values.items():
        if value is not None and "\x00" in value:
            raise Invalid(f"{field} must not contain NUL characters")


def _check_lease_request(count: int, lease_seconds: int, *names: str | None) -> None:
    if not 1 <= count <= MAX_COUNT:
        raise Invalid(f"count must be between 1 and {MAX_COUNT}")
    if not MIN_LEASE_SECONDS <= lease_seconds <= MAX_LEASE_SECONDS:
        raise Invalid(f"leaseSeconds must be between {MIN_LEASE_SECONDS} and {MAX_LEASE_SECONDS}")
    if any(name is not None and len(name) > MAX_NAME_CHARS for name in names):
        raise Invalid(f"agentId and skill have at most {MAX_NAME_CHARS} characters")


def _check_routing(campaign: CampaignInfo, agent_id: str | None, skill: str | None) -> None:
    if campaign.routing == Routing.AGENTWISE and not agent_id:
        raise Invalid(f"campaign {campaign.name!r} is agent-wise: give the agentId leasing")
    if campaign.routing == Routing.SKILLWISE and not skill:
        raise Invalid(f"campaign {campaign.name!r} is skill-wise: give the skill leasing")


async def account_campaign(session: AsyncSession, account: Account, name: str) -> Campaign:
    """The account's campaign by name; 404 for any other (another account's too)."""
    if "\x00" in name:
        raise NotFound(f"account {account.username!r} has no campaign named {name!r}")
    return await get_account_campaign(session, account, name)


def check_outcome(outcome: str) -> Outcome:
    try:
        return Outcome(outcome)
    except ValueError as exc:
        raise Invalid(f"unknown outcome {outcome!r}: use one of {OUTCOMES}") from exc


LEASE_ID = re.compile(r"[0-9a-f]{32}")
MAX_RECHECKS = 5
SETTINGS_MOVING = "The account's settings are changing too fast; try again."


class Dialer:
    """Leases and outcomes, for an authenticated account (``Directory.authenticate``)."""

    def __init__(self, directory: Directory, store: QueueStore) -> None:
        self.directory = directory
        self.store = store

    async def lease(
        self,
        account: AccountInfo,
        campaign_name: str,
        *,
        agent_id: str | None = None,
        skill: str | None = None,
        count: int = 1,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
    ) -> list[LeasedLead]:
        """Hand out up to ``count`` due leads; an empty list when nothing is due."""
        _check_lease_request(count, lease_seconds, agent_id, skill)
        check_text(agentId=agent_id, skill=skill)
        for _ in range(MAX_RECHECKS):
            campaign = await self._campaign(account, campaign_name)
            _check_routing(campaign, agent_id, skill)
            ask = LeaseAsk(
                campaign_id=campaign.id,
                revision=_revision(account, campaign),
                routing=campaign.routing,
                agent_id=agent_id,
                skill=skill,
                count=count,
                lease_seconds=lease_seconds,
            )
            answer = await self.store.lease(ask)
            if isinstance(answer, Stopped):
                raise Conflict(
                    f"campaign {campaign.name!r} is stopped: start it to lease its leads"
                )
            if not isinstance(answer, Stale):
                return answer
            account = await self._recheck(account, answer)
        raise ServiceUnavailable(SETTINGS_MOVING)

    async def report(
        self, account: AccountInfo, lease_id: str, outcome: str, note: str | None = None
    ) -> Report:
        """Record a lease's outcome and move its lead on by the campaign's retry policy."""
        checked = check_outcome(outcome)
        check_text(note=note)
        if note is not None and len(note) > MAX_NOTE_CHARS:
            raise Invalid(f"a note has at most {MAX_NOTE_CHARS} characters")
        if not LEASE_ID.fullmatch(lease_id):
            raise NotFound(f"no lease {lease_id!r}")
        for _ in range(MAX_RECHECKS):
            ask = OutcomeAsk(
                lease_id=lease_id,
                account_id=account.id,
                revision=account.revision,
                outcome=checked.value,
                retryable=checked in RETRYABLE,
                note=note,
            )
            answer = await self.store.report(ask)
            if isinstance(answer, Refused):
                raise (NotFound if answer.status == 404 else Conflict)(answer.message)
            if not isinstance(answer, Stale):
                return answer
            account = await self._recheck(account, answer)
        raise ServiceUnavailable(SETTINGS_MOVING)

    async def _campaign(self, account: AccountInfo, name: str) -> CampaignInfo:
        campaign = None
        if "\x00" not in name:
            campaign = await self.directory.campaign(account.id, name.strip())
        if campaign is None:
            raise NotFound(f"account {account.username!r} has no campaign named {name!r}")
        return campaign

    async def _recheck(self, account: AccountInfo, stale: Stale) -> AccountInfo:
        """The account read afresh after the revision moved (its key may have changed)."""
        self.directory.saw_revision(stale.revision)
        fresh = await self.directory.account(account.username)
        if fresh is None or fresh.api_key_hash != account.api_key_hash:
            raise Unauthorized("wrong user name or API key")
        return fresh


def _revision(account: AccountInfo, campaign: CampaignInfo) -> int:
    """The revision both were read at; -1 (stale whatever the database says) if they differ."""
    return account.revision if account.revision == campaign.revision else -1


async def set_campaign_running(
    session: AsyncSession, account: Account, campaign_name: str, running: bool
) -> tuple[Campaign, bool]:
    """Start or stop one of the account's campaigns; says whether its state changed."""
    campaign = await account_campaign(session, account, campaign_name)
    await lock_for_writing(session)
    return campaign, await set_running(session, campaign, running)
