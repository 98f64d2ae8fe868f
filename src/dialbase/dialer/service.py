"""Leasing leads to dialers, their outcomes, the retry policy. No web framework here.

Retry policy (per campaign, ``dialbase campaign update``): ``max_attempts`` (default 3)
dial attempts per lead, ``retry_delay_seconds`` (default 600) between them. After
``no_answer``, ``busy`` or ``failed`` the lead is due again after the delay while
attempts remain, else done; ``connected``, ``invalid_number`` and ``do_not_call``
finish it. A lease not reported by its deadline returns its lead to the queue at once;
that attempt counts.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dialbase.accounts.models import Account
from dialbase.campaigns.models import Campaign, Routing
from dialbase.campaigns.service import get_account_campaign, set_running
from dialbase.db import utcnow
from dialbase.dialer.models import RETRYABLE, Lease, Outcome
from dialbase.dialer.queue import (
    DONE,
    LEASED,
    RETRY,
    due_leads,
    lock_for_writing,
    mark_leased,
    settle,
)
from dialbase.errors import Conflict, Invalid, NotFound
from dialbase.leads.models import Lead

MAX_COUNT = 100
MIN_LEASE_SECONDS = 1
MAX_LEASE_SECONDS = 3600
DEFAULT_LEASE_SECONDS = 300
MAX_NOTE_CHARS = 1000
MAX_NAME_CHARS = 255
OUTCOMES = ", ".join(o.value for o in Outcome)


@dataclass(frozen=True, slots=True)
class LeasedLead:
    lease_id: str
    deadline: datetime
    phone_number: str
    name: str | None
    priority: int
    agent_id: str | None
    skill: str | None
    extra: dict[str, Any]
    attempt: int


@dataclass(frozen=True, slots=True)
class Report:
    lease_id: str
    outcome: str
    lead_status: str
    attempt: int
    next_attempt_at: datetime | None


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


def _check_routing(campaign: Campaign, agent_id: str | None, skill: str | None) -> None:
    if campaign.routing == Routing.AGENTWISE and not agent_id:
        raise Invalid(f"campaign {campaign.name!r} is agent-wise: give the agentId leasing")
    if campaign.routing == Routing.SKILLWISE and not skill:
        raise Invalid(f"campaign {campaign.name!r} is skill-wise: give the skill leasing")


async def lease(
    session: AsyncSession,
    account: Account,
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
    campaign = await account_campaign(session, account, campaign_name)
    _check_routing(campaign, agent_id, skill)
    if not campaign.running:
        raise Conflict(f"campaign {campaign.name!r} is stopped: start it to lease its leads")
    await lock_for_writing(session)
    now = utcnow()
    await settle(session, campaign, now)
    rows = (await session.execute(due_leads(campaign, agent_id, skill, now, count))).all()
    if not rows:
        return []
    deadline = now + timedelta(seconds=lease_seconds)
    await mark_leased(session, [row.id for row in rows], deadline)
    leased = [_leased_lead(row, deadline) for row in rows]
    await session.execute(
        insert(Lease),
        [
            {
                "id": item.lease_id,
                "campaign_id": campaign.id,
                "lead_id": row.id,
                "attempt": item.attempt,
                "agent_id": agent_id,
                "skill": skill,
                "leased_at": now,
                "deadline": deadline,
            }
            for row, item in zip(rows, leased, strict=True)
        ],
    )
    return leased


async def account_campaign(session: AsyncSession, account: Account, name: str) -> Campaign:
    """The account's campaign by name; 404 for any other (another account's too)."""
    if "\x00" in name:
        raise NotFound(f"account {account.username!r} has no campaign named {name!r}")
    return await get_account_campaign(session, account, name)


def _leased_lead(row: Any, deadline: datetime) -> LeasedLead:
    return LeasedLead(
        lease_id=uuid.uuid4().hex,
        deadline=deadline,
        phone_number=row.phone_number,
        name=row.name,
        priority=row.priority,
        agent_id=row.agent_id,
        skill=row.skill,
        extra=dict(row.extra or {}),
        attempt=row.attempts + 1,
    )


def check_outcome(outcome: str) -> Outcome:
    try:
        return Outcome(outcome)
    except ValueError as exc:
        raise Invalid(f"unknown outcome {outcome!r}: use one of {OUTCOMES}") from exc


def next_state(campaign: Campaign, attempt: int, outcome: Outcome, now: datetime) -> Report:
    """Where the retry policy sends a lead after ``outcome`` on its ``attempt``."""
    if outcome in RETRYABLE and attempt < campaign.max_attempts:
        due = now + timedelta(seconds=campaign.retry_delay_seconds)
        return Report("", outcome.value, RETRY, attempt, due)
    return Report("", outcome.value, DONE, attempt, None)


LEASE_ID = re.compile(r"[0-9a-f]{32}")


async def _find_lease(
    session: AsyncSession, account: Account, lease_id: str
) -> tuple[Lease, Campaign]:
    if not LEASE_ID.fullmatch(lease_id):
        raise NotFound(f"no lease {lease_id!r}")
    row = (
        await session.execute(
            select(Lease, Campaign)
            .join(Campaign, Campaign.id == Lease.campaign_id)
            .where(Lease.id == lease_id, Campaign.account_id == account.id)
        )
    ).first()
    if row is None:
        raise NotFound(f"no lease {lease_id!r}")
    return row[0], row[1]


def _check_open(found: Lease, now: datetime) -> None:
    if found.outcome is not None:
        raise Conflict(f"lease {found.id!r} was already reported ({found.outcome})")
    if found.deadline <= now:
        raise Conflict(
            f"lease {found.id!r} expired at {found.deadline.isoformat()}:"
            " its lead went back to the queue"
        )


async def report(
    session: AsyncSession, account: Account, lease_id: str, outcome: str, note: str | None = None
) -> Report:
    """Record a lease's outcome and move its lead on by the campaign's retry policy."""
    checked = check_outcome(outcome)
    check_text(note=note)
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise Invalid(f"a note has at most {MAX_NOTE_CHARS} characters")
    found, campaign = await _find_lease(session, account, lease_id)
    now = utcnow()
    _check_open(found, now)
    await lock_for_writing(session)
    state = next_state(campaign, found.attempt, checked, now)
    claimed = await session.execute(
        update(Lease)
        .where(Lease.id == found.id, Lease.outcome.is_(None))
        .values(outcome=checked.value, note=note, reported_at=now)
        .execution_options(synchronize_session=False)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        raise Conflict(f"lease {found.id!r} was already reported")
    moved = await session.execute(
        update(Lead)
        .where(Lead.id == found.lead_id, Lead.status == LEASED, Lead.attempts == found.attempt)
        .values(status=state.lead_status, due_at=state.next_attempt_at or now)
        .execution_options(synchronize_session=False)
    )
    if not moved.rowcount:  # type: ignore[attr-defined]
        raise Conflict(f"lease {found.id!r} expired: its lead went back to the queue")
    return Report(found.id, checked.value, state.lead_status, found.attempt, state.next_attempt_at)


async def set_campaign_running(
    session: AsyncSession, account: Account, campaign_name: str, running: bool
) -> tuple[Campaign, bool]:
    """Start or stop one of the account's campaigns; says whether its state changed."""
    campaign = await account_campaign(session, account, campaign_name)
    await lock_for_writing(session)
    return campaign, await set_running(session, campaign, running)
