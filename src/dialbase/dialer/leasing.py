"""What the dialer asks of the queue and what it gets back: typed, no I/O.

The queue's rules, the same on both backends (``dialer.stores``), in one transaction:

1. the configuration revision must be the one the caller's account and campaign were
   read at (``Stale`` otherwise: the caller refreshes its cache and asks again), and the
   campaign must be running (``Stopped``);
2. time is applied (``settle``): lapsed leases and retries whose time came are due again
   (``pending``), or ``done`` when the campaign's attempts are used up; pending and retry
   leads past their expiry are ``expired``;
3. leasing picks the first ``count`` pending, unexpired leads in queue order (priority high
   to low, then earlier ``due_at``, then arrival), of the caller's agent or skill when the
   campaign routes by them, through the queue indexes; each becomes ``leased`` until the
   deadline, its attempt counted, and a lease row records the hand-out;
4. an outcome claims its open lease (once), and moves its lead by the retry policy: after
   a retryable outcome (no answer, busy, failed) the lead is due again after the
   campaign's retry delay while attempts remain; otherwise it is ``done``.

The next rules (calling hours in the lead's local time, do-not-call lists, callbacks)
belong in step 2 and 3 of both stores: a lead outside its calling hours is not due (its
``due_at`` moves to the next window), a listed number is never picked.

Time is read inside the transaction (SQLite: the process's clock once it holds the write
lock; PostgreSQL: the server's ``now()``), so that a lease and an outcome are stamped in
the order they committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

PENDING, LEASED, RETRY, DONE, EXPIRED = "pending", "leased", "retry", "done", "expired"


@dataclass(frozen=True, slots=True)
class LeaseAsk:
    campaign_id: int
    revision: int
    routing: str  # general, agentwise or skillwise: which queue index to read
    agent_id: str | None
    skill: str | None
    count: int
    lease_seconds: int


@dataclass(frozen=True, slots=True)
class OutcomeAsk:
    lease_id: str
    account_id: int
    revision: int
    outcome: str
    retryable: bool
    note: str | None


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
