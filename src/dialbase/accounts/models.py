from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from dialbase.db import Base, UTCDateTime, utcnow


class AuthMode(enum.StrEnum):
    """The account's "API Authentication" setting; only BASIC_AUTH may add campaign data."""

    BASIC_AUTH = "BASIC_AUTH"
    TOKEN_AUTH = "TOKEN_AUTH"
    NONE = "NONE"


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), unique=True)
    api_key_hash: Mapped[str] = mapped_column(String(64))
    auth_mode: Mapped[str] = mapped_column(String(16), default=AuthMode.BASIC_AUTH.value)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    rate_limit: Mapped[int] = mapped_column(Integer, default=100)
    # ISO 3166 code numbers without a country prefix are read in; None: no default.
    default_country: Mapped[str | None] = mapped_column(String(2))
    # No number handed out more than this many times in any 24 hours (0: no cap).
    max_daily_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConfigRevision(Base):
    """One row whose value grows on every change of an account or a campaign.

    Workers cache accounts and campaigns; a write batch compares the revision its
    requests were checked against with this value inside its own transaction.
    """

    __tablename__ = "config_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)
