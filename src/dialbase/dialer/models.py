"""The leases table, and the indexes on ``leads`` that serve the dialing queue.

The queue indexes are declared here (not in ``leads.models``) because only the dialer
reads leads in this order; they attach to the ``leads`` table all the same.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from dialbase.db import Base, UTCDateTime, utcnow
from dialbase.leads.models import Lead


class Outcome(enum.StrEnum):
    """What a dialer reports for a lease."""

    CONNECTED = "connected"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    INVALID_NUMBER = "invalid_number"
    DO_NOT_CALL = "do_not_call"
    CALLBACK = "callback"


# Outcomes after which the lead is dialed again (while attempts remain).
RETRYABLE = frozenset({Outcome.NO_ANSWER, Outcome.BUSY, Outcome.FAILED})


class Lease(Base):
    """One hand-out of a lead to a dialer: attempt number, deadline, reported outcome."""

    __tablename__ = "leases"
    __table_args__ = (
        Index("ix_leases_campaign_outcome", "campaign_id", "outcome"),
        # The 24-hour attempt cap counts an account's hand-outs of a number.
        Index("ix_leases_number", "account_id", "phone_e164", "leased_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    lead_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("leads.id", ondelete="CASCADE"),
        index=True,
    )
    attempt: Mapped[int] = mapped_column(Integer)
    account_id: Mapped[int | None] = mapped_column(Integer)
    phone_e164: Mapped[str | None] = mapped_column(String(32))
    agent_id: Mapped[str | None] = mapped_column(String(255))
    skill: Mapped[str | None] = mapped_column(String(255))
    leased_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(1000))
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# The queue order (priority high to low, then due time, then arrival) for each routing,
# per zone key: a lease reads one range per zone key inside calling hours and merges them.
_ORDER = (Lead.priority.desc(), Lead.due_at, Lead.id)
QUEUE_INDEXES = (
    Index("ix_leads_queue", Lead.campaign_id, Lead.status, Lead.time_zones, *_ORDER),
    Index(
        "ix_leads_agent_queue",
        Lead.campaign_id,
        Lead.status,
        Lead.agent_id,
        Lead.time_zones,
        *_ORDER,
        sqlite_where=Lead.agent_id.is_not(None),
        postgresql_where=Lead.agent_id.is_not(None),
    ),
    Index(
        "ix_leads_skill_queue",
        Lead.campaign_id,
        Lead.status,
        Lead.skill,
        Lead.time_zones,
        *_ORDER,
        sqlite_where=Lead.skill.is_not(None),
        postgresql_where=Lead.skill.is_not(None),
    ),
    # Leased leads whose deadline passed, retries, holds and callbacks whose time came.
    Index("ix_leads_wake", Lead.campaign_id, Lead.status, Lead.due_at),
    # The settle's wake alone: only leads waiting for a time, so the planner never reads
    # the queue index instead (whose due_at comes after the zone key and the priority).
    Index(
        "ix_leads_waiting",
        Lead.campaign_id,
        Lead.due_at,
        sqlite_where=Lead.status.in_(("leased", "retry", "held")),
        postgresql_where=Lead.status.in_(("leased", "retry", "held")),
    ),
    Index(
        "ix_leads_expiry",
        Lead.campaign_id,
        Lead.status,
        Lead.expires_at,
        sqlite_where=Lead.expires_at.is_not(None),
        postgresql_where=Lead.expires_at.is_not(None),
    ),
)
