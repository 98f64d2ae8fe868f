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
    DONE = "done"
    EXPIRED = "expired"


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (Index("ix_leads_campaign_id_id", "campaign_id", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    phone_number: Mapped[str] = mapped_column(String(17))
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


class CampaignNumber(Base):
    """Every phone number a campaign holds, once: the guard of the exact duplicate check."""

    __tablename__ = "campaign_numbers"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    phone_number: Mapped[str] = mapped_column(String(17), primary_key=True)


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
