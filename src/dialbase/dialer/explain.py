"""Why a lead is not being dialed, and when it will be; the same for a whole campaign.

``explain`` answers for one lead, from what the queue would do (``dialer.leasing``) at an
instant: each blocking reason with, where one exists, the instant it ends, and the first
instant the lead can be leased (``next_dialable_at``; None when never). ``forecast``
counts a campaign's queued leads by the same reasoning. Neither writes: time-driven
changes the next lease would apply (lapsed leases, retries come due, expiry) are
computed, as the statistics do.

Reason codes: ``campaign_stopped``, ``outside_calling_hours``, ``do_not_call``,
``retry_scheduled``, ``callback_scheduled``, ``leased``, ``daily_attempt_cap``,
``attempts_used_up``, ``expired``, ``deleted``, ``agent_only`` (a due callback only its
agent's lease receives: a restriction, not a block) and ``completed`` (finished with a
final outcome). ``next_dialable_at`` assumes the campaign keeps running; a stopped
campaign only adds ``campaign_stopped`` and makes ``dialable`` false.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from dialbase.dialer.hours import CallingHours, zones_of
from dialbase.dialer.leasing import (
    ATTEMPTS_USED_UP,
    CALLBACK,
    DAY,
    DO_NOT_CALL,
    DONE,
    EXPIRED,
    HELD,
    LEASED,
    PENDING,
    RETRY,
)

DELETED = "deleted"
QUEUED = (PENDING, LEASED, RETRY, HELD, CALLBACK)
FORECAST_HOURS = 24


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    message: str
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class LeadFacts:
    """What explaining a lead needs of it (as stored)."""

    id: int
    phone_number: str
    status: str
    attempts: int
    due_at: datetime
    expires_at: datetime | None
    time_zones: str
    callback_at: datetime | None
    callback_agent: str | None
    closed_reason: str | None


@dataclass(frozen=True, slots=True)
class NumberFacts:
    """What the account's lists say of the lead's number now."""

    listed: bool = False
    recent_attempts: int = 0  # hand-outs in the last 24 hours, all campaigns
    oldest_attempt: datetime | None = None  # the oldest of them


@dataclass(frozen=True, slots=True)
class CampaignFacts:
    running: bool
    hours: CallingHours | None
    max_attempts: int
    daily_cap: int  # the account's; 0: none


@dataclass(frozen=True, slots=True)
class Explained:
    lead_id: int
    phone_number: str
    status: str
    time_zones: tuple[str, ...]
    dialable: bool
    reasons: tuple[Reason, ...]
    next_dialable_at: datetime | None


def settled(lead: LeadFacts, campaign: CampaignFacts, now: datetime) -> str:
    """The status the next lease's settle step would give the lead (``queue.settled_status``)."""
    status = lead.status
    if status in (LEASED, RETRY, HELD) and lead.due_at <= now:
        used_up = (
            status != HELD and lead.callback_at is None and lead.attempts >= campaign.max_attempts
        )
        if used_up:
            return DONE
        status = CALLBACK if lead.callback_at is not None else PENDING
    if status in QUEUED and status != LEASED and lead.expires_at and lead.expires_at <= now:
        return EXPIRED
    return status


def explain(
    lead: LeadFacts, campaign: CampaignFacts, number: NumberFacts, now: datetime
) -> Explained:
    status = settled(lead, campaign, now)
    reasons, start = _state(lead, status, campaign, now)
    zones = tuple(lead.time_zones.split(","))
    if start is None:  # finished: nothing will make it dialable
        return Explained(lead.id, lead.phone_number, status, zones, False, tuple(reasons), None)
    callback = status == CALLBACK or (status == LEASED and lead.callback_at is not None)
    if number.listed:
        reasons.insert(
            0,
            Reason(
                DO_NOT_CALL,
                "the number is on the do-not-call list: the next lease closes this lead for good",
            ),
        )
        start = None
    capped = campaign.daily_cap and number.recent_attempts >= campaign.daily_cap
    if start is not None and capped and status != HELD:
        until = (number.oldest_attempt or now) + DAY
        reasons.append(
            Reason(
                "daily_attempt_cap",
                f"the number was handed out {number.recent_attempts} times in the last 24"
                f" hours (cap {campaign.daily_cap})",
                until,
            )
        )
        start = max(start, until)
    if start is not None and not callback and campaign.hours is not None:
        opens = campaign.hours.next_open(zones_of(lead.time_zones), start)
        if opens is None:
            message = f"the calling hours never overlap in all of its zones ({lead.time_zones})"
            reasons.append(Reason("outside_calling_hours", message))
        elif opens > start:
            message = f"outside the calling hours in its time zones ({lead.time_zones})"
            reasons.append(Reason("outside_calling_hours", message, opens))
        start = opens
    if start is not None and lead.expires_at is not None and start >= lead.expires_at:
        reasons.append(Reason(EXPIRED, "it expires before it can be dialed", lead.expires_at))
        start = None
    blocked = any(reason.code != "agent_only" for reason in reasons)
    if not campaign.running:
        reasons.append(Reason("campaign_stopped", "the campaign is stopped: start it to dial"))
    if status == CALLBACK and lead.callback_agent is not None:
        reasons.append(
            Reason(
                "agent_only",
                f"a callback for agent {lead.callback_agent!r}: only a lease"
                " for that agent receives it",
            )
        )
    dialable = campaign.running and start is not None and not blocked
    return Explained(lead.id, lead.phone_number, status, zones, dialable, tuple(reasons), start)


def _state(
    lead: LeadFacts, status: str, campaign: CampaignFacts, now: datetime
) -> tuple[list[Reason], datetime | None]:
    """The reason the lead's own state gives, and the earliest instant it allows (None:
    never)."""
    if status == DONE:
        if lead.closed_reason == DO_NOT_CALL:
            return [Reason(DO_NOT_CALL, "closed: the number is on the do-not-call list")], None
        if lead.closed_reason == ATTEMPTS_USED_UP or (
            lead.closed_reason is None and lead.attempts >= campaign.max_attempts
        ):
            return [
                Reason(ATTEMPTS_USED_UP, f"all {campaign.max_attempts} attempts were used")
            ], None
        outcome = lead.closed_reason or "a final outcome"
        return [Reason("completed", f"finished with outcome {outcome}")], None
    if status == EXPIRED:
        return [Reason(EXPIRED, "the lead expired")], None
    if status == DELETED:
        return [Reason(DELETED, "the lead was deleted")], None
    if status == LEASED:
        reason = Reason(LEASED, "a dialer holds it until the lease's deadline", lead.due_at)
        lapsed_done = lead.callback_at is None and lead.attempts >= campaign.max_attempts
        return [reason], None if lapsed_done else lead.due_at
    if status == RETRY:
        return [
            Reason("retry_scheduled", "the next attempt is scheduled", lead.due_at)
        ], lead.due_at
    if status == HELD:
        return [
            Reason("daily_attempt_cap", "the number reached the 24-hour attempt cap", lead.due_at)
        ], lead.due_at
    if status == CALLBACK and lead.due_at > now:
        return [Reason("callback_scheduled", "a callback is booked", lead.due_at)], lead.due_at
    return [], now


@dataclass(frozen=True, slots=True)
class Forecast:
    at: datetime
    running: bool
    queued: int
    dialable_now: int
    blocked: dict[str, int]
    hours: list[tuple[datetime, int]]  # (start of the hour, leads that become dialable in it)
    later: int  # become dialable after the last hour
    never: int


@dataclass(frozen=True, slots=True)
class LeadGroup:
    """Queued leads alike for the forecast: one representative and how many."""

    facts: LeadFacts
    listed: bool
    count: int


def forecast(campaign: CampaignFacts, groups: Iterable[LeadGroup], now: datetime) -> Forecast:
    """Counts over groups of alike leads; hours start at ``now``'s minute (leads are
    grouped by the minute they come due, and a minute lies within one hour)."""
    start = now.replace(second=0, microsecond=0)
    running = CampaignFacts(True, campaign.hours, campaign.max_attempts, 0)
    blocked: Counter[str] = Counter()
    per_hour = [0] * FORECAST_HOURS
    queued = dialable_now = later = never = 0
    for group in groups:
        queued += group.count
        answer = explain(group.facts, running, NumberFacts(listed=group.listed), now)
        if answer.dialable:
            if campaign.running:
                dialable_now += group.count
            else:
                blocked["campaign_stopped"] += group.count
            continue
        primary = next((r.code for r in answer.reasons if r.code != "agent_only"), "unknown")
        blocked[primary] += group.count
        if answer.next_dialable_at is None:
            never += group.count
            continue
        hour = int((answer.next_dialable_at - start) / timedelta(hours=1))
        if hour < FORECAST_HOURS:
            per_hour[max(hour, 0)] += group.count
        else:
            later += group.count
    return Forecast(
        at=now,
        running=campaign.running,
        queued=queued,
        dialable_now=dialable_now,
        blocked=dict(blocked),
        hours=[(start + timedelta(hours=h), n) for h, n in enumerate(per_hour)],
        later=later,
        never=never,
    )


def reason_codes() -> Sequence[str]:
    return (
        "campaign_stopped",
        "outside_calling_hours",
        DO_NOT_CALL,
        "retry_scheduled",
        "callback_scheduled",
        LEASED,
        "daily_attempt_cap",
        ATTEMPTS_USED_UP,
        EXPIRED,
        DELETED,
        "agent_only",
        "completed",
    )
