from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from dialbase.db import Base, UTCDateTime, utcnow


class LeadStatus(enum.StrEnum):
    PENDING = "pending"
    LEASED = "leased"
    RETRY = "retry"
    HELD = "held"  # waiting for the number's 24-hour attempt cap
    CALLBACK = "callback"  # due at a time the person chose
    DONE = "done"
    EXPIRED = "expired"
    DELETED = "deleted"  # soft-deleted (``compat.deletion``): in no queue, list or export


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        Index("ix_leads_campaign_id_id", "campaign_id", "id"),
        Index("ix_leads_campaign_e164", "campaign_id", "phone_e164"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    phone_number: Mapped[str] = mapped_column(String(17))  # as sent
    # Both always written; nullable only because rows older than them were filled in.
    phone_e164: Mapped[str] = mapped_column(String(32), nullable=True)  # ``phones.e164``
    time_zones: Mapped[str] = mapped_column(String, nullable=True)  # decided at insert
    name: Mapped[str | None] = mapped_column(String)
    priority: Mapped[int] = mapped_column(Integer, default=1)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    agent_id: Mapped[str | None] = mapped_column(String)
    skill: Mapped[str | None] = mapped_column(String)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=LeadStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    callback_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # while a callback
    callback_agent: Mapped[str | None] = mapped_column(String(255))  # only this agent gets it
    closed_reason: Mapped[str | None] = mapped_column(String(32))  # why a done lead is done
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # with status deleted


class CampaignNumber(Base):
    """Every phone number a campaign holds in a live (not deleted) lead, E.164 form, once:
    the guard of the exact duplicate check. Deleting a number's last live lead of a
    campaign deletes its guard in the same transaction (``compat.deletion``), so the
    number can be added again with the duplicate check on."""

    __tablename__ = "campaign_numbers"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    phone_number: Mapped[str] = mapped_column(String(17), primary_key=True)


class CampaignZones(Base):
    """Every zone key a campaign's leads have: the queue reads one index range per key."""

    __tablename__ = "campaign_zones"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    time_zones: Mapped[str] = mapped_column(String, primary_key=True)


class WriteBatch(Base):
    """A committed (or, with ``kept`` null, a never-to-commit) PostgreSQL write batch.

    Written in the batch's own transaction, so that a batch whose commit may or may not
    have happened can be looked up instead of written again (see ``leads.batch``). Rows
    older than an hour are deleted by the writer.
    """

    __tablename__ = "write_batches"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revision: Mapped[int | None] = mapped_column(Integer)
    kept: Mapped[list[int] | None] = mapped_column(JSON)
    listed: Mapped[list[int] | None] = mapped_column(JSON)  # refused: do-not-call
