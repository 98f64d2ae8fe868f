"""What the dialer asks of the queue and what it gets back: typed, no I/O.

The queue's rules, the same on both backends (``dialer.stores``), in one transaction:

1. the configuration revision must be the one the caller's account and campaign were
   read at (``Stale`` otherwise: the caller refreshes its cache and asks again), and the
   campaign must be running (``Stopped``);
2. time is applied (``settle``): lapsed leases, retries and holds whose time came are due
   again (``pending``; a lapsed callback is a due ``callback`` again), or ``done`` when
   the campaign's attempts are used up; queued leads past their expiry are ``expired``;
3. leasing reads candidates in queue order: first due callbacks (oldest first; one with
   an agent goes only to a lease asking for that agent, in any routing; calling hours do
   not apply), then pending leads in priority order (high to low, then earlier
   ``due_at``, then arrival) whose zone key is inside the campaign's calling hours now,
   of the caller's agent or skill when the campaign routes by them. The stores read one
   queue-index range per open zone key and merge them: which keys are open is decided
   per minute from the campaign's few keys (``dialer.hours.OpenZones``), never per lead;
4. each candidate is then checked against the account's do-not-call list (listed: the
   lead is ``done`` for good, reason ``do_not_call``) and the account's 24-hour attempt
   cap on its number (reached: the lead is ``held`` until the oldest counted hand-out is
   24 hours old; a callback stays a callback, due then). The others become ``leased``
   until the deadline, their attempt counted, and a lease row records the hand-out (with
   the account and number the cap counts). Rounds repeat until ``count`` leads are
   leased or the queue has no more candidates;
5. an outcome claims its open lease (once), and moves its lead: ``callback`` makes it due
   at ``callbackAt`` (it gets that attempt even if the campaign's attempts are used up);
   a retryable outcome (no answer, busy, failed) makes it due again after the
   campaign's delay for that outcome while attempts remain; anything else makes it
   ``done``. ``do_not_call`` also puts the number on the account's list.

Time is read inside the transaction (SQLite: the process's clock once it holds the write
lock; PostgreSQL: the server's ``now()``), so that a lease and an outcome are stamped in
the order they committed. Calling hours are read on the service's clock
(``Dialer.clock``), which tests can set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

PENDING, LEASED, RETRY, DONE, EXPIRED = "pending", "leased", "retry", "done", "expired"
HELD, CALLBACK = "held", "callback"
DO_NOT_CALL = "do_not_call"
ATTEMPTS_USED_UP = "attempts_used_up"
DAY = timedelta(hours=24)
MAX_ROUNDS = 8  # candidate reads per lease (each one hands out, closes or holds them all)


@dataclass(frozen=True, slots=True)
class LeaseAsk:
    campaign_id: int
    account_id: int
    revision: int
    routing: str  # general, agentwise or skillwise: which queue index to read
    agent_id: str | None
    skill: str | None
    count: int
    lease_seconds: int
    daily_cap: int  # the account's attempts per number per 24 hours; 0: none
    open_zones: Callable[[Sequence[str]], list[str]]  # the zone keys inside calling hours


@dataclass(frozen=True, slots=True)
class OutcomeAsk:
    lease_id: str
    account_id: int
    revision: int
    outcome: str
    retryable: bool
    note: str | None
    callback_at: datetime | None = None  # with outcome ``callback``
    callback_agent: str | None = None
    webhooks: bool = False  # the account has a webhook: write the lead.outcome event


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
    callback: bool = False


@dataclass(frozen=True, slots=True)
class Report:
    lease_id: str
    outcome: str
    lead_status: str
    attempt: int
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class Stale:
    """The configuration revision moved: check the account and campaign again."""

    revision: int


@dataclass(frozen=True, slots=True)
class Stopped:
    """The campaign is not running."""


@dataclass(frozen=True, slots=True)
class Refused:
    """The outcome cannot be recorded: ``status`` 404 (no such lease) or 409."""

    status: int
    message: str


@dataclass(frozen=True, slots=True)
class Step:
    """Where an outcome moves its lead."""

    status: str
    due: datetime
    closed_reason: str | None
    next_attempt_at: datetime | None


def next_step(
    ask: OutcomeAsk,
    now: datetime,
    attempt: int,
    max_attempts: int,
    delays: Mapping[str, int] | None,
    default_delay: int,
) -> Step:
    """Rule 5, for a lease whose attempt was ``attempt``."""
    if ask.callback_at is not None:
        return Step(CALLBACK, ask.callback_at, None, ask.callback_at)
    if ask.retryable and attempt < max_attempts:
        due = now + timedelta(seconds=(delays or {}).get(ask.outcome, default_delay))
        return Step(RETRY, due, None, due)
    return Step(DONE, now, ATTEMPTS_USED_UP if ask.retryable else ask.outcome, None)


def suppression_note(ask: OutcomeAsk) -> str:
    return f"outcome do_not_call on lease {ask.lease_id}"


class QueueStore(Protocol):
    async def settle(self, campaign_id: int) -> None:
        """Rule 2 alone, in its own transaction (every lease does it first)."""

    async def lease(self, ask: LeaseAsk) -> list[LeasedLead] | Stale | Stopped: ...

    async def report(self, ask: OutcomeAsk) -> Report | Stale | Refused: ...

    async def close(self) -> None: ...


def refusal(
    ask: OutcomeAsk, now: datetime, outcome: str | None, deadline: datetime | None, found: bool
) -> Refused:
    """Why an outcome was not recorded, from what the store found of the lease."""
    if not found:
        return Refused(404, f"no lease {ask.lease_id!r}")
    if outcome is not None:
        return Refused(409, f"lease {ask.lease_id!r} was already reported ({outcome})")
    if deadline is not None and deadline <= now:
        return Refused(
            409,
            f"lease {ask.lease_id!r} expired at {deadline.isoformat()}:"
            " its lead went back to the queue",
        )
    return Refused(409, f"lease {ask.lease_id!r} expired: its lead went back to the queue")
