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
