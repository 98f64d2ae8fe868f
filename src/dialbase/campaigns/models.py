from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dialbase.db import Base, UTCDateTime, utcnow


class Direction(enum.StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class DialType(enum.StrEnum):
    PROGRESSIVE = "Progressive"
    PREDICTIVE = "Predictive"
    PREVIEW = "Preview"
    IVR = "IVR"


class Routing(enum.StrEnum):
    GENERAL = "general"
    AGENTWISE = "agentwise"
    SKILLWISE = "skillwise"


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (UniqueConstraint("account_id", "name", name="uq_campaigns_account_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(String(16), default=Direction.OUTBOUND.value)
    dial_type: Mapped[str] = mapped_column(String(16))
    routing: Mapped[str] = mapped_column(String(16), default=Routing.GENERAL.value)
    running: Mapped[bool] = mapped_column(Boolean, default=False)
    agents: Mapped[list[str]] = mapped_column(JSON, default=list)
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    retry_delay_seconds: Mapped[int] = mapped_column(Integer, default=600)
    # Seconds before the next attempt after a given outcome, e.g. {"busy": 120}.
    retry_delays: Mapped[dict[str, int] | None] = mapped_column(JSON)
    # Canonical calling hours (``dialer.hours``); None: dial any time.
    calling_hours: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
