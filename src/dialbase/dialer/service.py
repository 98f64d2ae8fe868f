"""Leasing leads to dialers, their outcomes, the retry policy. No web framework here.

Retry policy (per campaign, ``dialbase campaign update``): ``max_attempts`` (default 3)
dial attempts per lead, ``retry_delay_seconds`` (default 600) between them, or the
delay ``retry_delays`` names for the outcome. After ``no_answer``, ``busy`` or
``failed`` the lead is due again after the delay while attempts remain, else done;
``callback`` makes it due at ``callbackAt``; ``connected``, ``invalid_number`` and
``do_not_call`` finish it (the last also lists the number). A lease not reported by its
deadline returns its lead to the queue at once; that attempt counts.

``Dialer`` checks a request, finds the account's campaign in the worker's cache
(``compat.directory``) and hands the work to the queue store of the backend
(``dialer.stores``), which applies the rules of ``dialer.leasing`` in one transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from dialbase.accounts.models import Account
from dialbase.campaigns.models import Campaign, Routing
from dialbase.campaigns.service import get_account_campaign, set_running
from dialbase.compat.directory import AccountInfo, CampaignInfo, Directory
from dialbase.dialer.hours import OpenZones
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
from dialbase.observability import metrics

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


MAX_CALLBACK_AHEAD = timedelta(days=365)


def check_callback(
    outcome: Outcome, callback_at: datetime | None, agent_id: str | None, now: datetime
) -> None:
    """``callbackAt`` goes with outcome ``callback`` alone: with an offset, in the future,
    within 365 days; ``agentId`` (whose the callback is) with it."""
    if outcome is not Outcome.CALLBACK:
        if callback_at is not None or agent_id is not None:
            raise Invalid("callbackAt and agentId go with outcome callback only")
        return
    if callback_at is None:
        raise Invalid("outcome callback needs callbackAt: when to call back (ISO 8601)")
    if callback_at.tzinfo is None or callback_at.utcoffset() is None:
        raise Invalid("callbackAt needs a UTC offset, like 2026-12-01T15:30:00+05:30")
    if callback_at <= now:
        raise Invalid("callbackAt must be in the future")
    if callback_at > now + MAX_CALLBACK_AHEAD:
        raise Invalid("callbackAt must be within 365 days")
    if agent_id is not None and (not agent_id.strip() or len(agent_id) > MAX_NAME_CHARS):
        raise Invalid(f"agentId has 1 to {MAX_NAME_CHARS} characters")
    check_text(agentId=agent_id)


LEASE_ID = re.compile(r"[0-9a-f]{32}")
# Made once: counting an outcome after its commit only adds to a number.
_OUTCOMES = {outcome: metrics.OUTCOMES.labels(outcome.value) for outcome in Outcome}
MAX_RECHECKS = 5
SETTINGS_MOVING = "The account's settings are changing too fast; try again."


class Dialer:
    """Leases and outcomes, for an authenticated account (``Directory.authenticate``)."""

    def __init__(
        self,
        directory: Directory,
        store: QueueStore,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.directory = directory
        self.store = store
        self.clock = clock  # calling hours and callback times are read on it
        self._open_zones = OpenZones()

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
                account_id=account.id,
                revision=_revision(account, campaign),
                routing=campaign.routing,
                agent_id=agent_id,
                skill=skill,
                count=count,
                lease_seconds=lease_seconds,
                daily_cap=account.max_daily_attempts,
                open_zones=self._zones_open(campaign),
            )
            answer = await self.store.lease(ask)
            if isinstance(answer, Stopped):
                raise Conflict(
                    f"campaign {campaign.name!r} is stopped: start it to lease its leads"
                )
            if not isinstance(answer, Stale):
                metrics.LEASES.inc(len(answer))
                return answer
            account = await self._recheck(account, answer)
        raise ServiceUnavailable(SETTINGS_MOVING)

    def _zones_open(self, campaign: CampaignInfo) -> Callable[[Sequence[str]], list[str]]:
        """Which of the campaign's zone keys are inside its calling hours, when asked."""
        return lambda keys: self._open_zones.select(campaign.hours, keys, self.clock())

    async def report(
        self,
        account: AccountInfo,
        lease_id: str,
        outcome: str,
        note: str | None = None,
        *,
        callback_at: datetime | None = None,
        agent_id: str | None = None,
    ) -> Report:
        """Record a lease's outcome and move its lead on by the campaign's retry policy."""
        checked = check_outcome(outcome)
        check_callback(checked, callback_at, agent_id, self.clock())
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
                callback_at=callback_at.astimezone(UTC) if callback_at else None,
                callback_agent=agent_id.strip() if agent_id else None,
                webhooks=account.has_webhooks,  # read at the revision the store checks
            )
            answer = await self.store.report(ask)
            if isinstance(answer, Refused):
                raise (NotFound if answer.status == 404 else Conflict)(answer.message)
            if not isinstance(answer, Stale):
                _OUTCOMES[checked].inc()
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
