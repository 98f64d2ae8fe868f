from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
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
    # Unique: the older add endpoint names the account by its key alone.
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    auth_mode: Mapped[str] = mapped_column(String(16), default=AuthMode.BASIC_AUTH.value)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    rate_limit: Mapped[int] = mapped_column(Integer, default=100)
    # ISO 3166 code numbers without a country prefix are read in; None: no default.
    default_country: Mapped[str | None] = mapped_column(String(2))
    # No number handed out more than this many times in any 24 hours (0: no cap).
    max_daily_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The id (``jti``) of the account's newest bearer token; every older token is refused.
    token_id: Mapped[str | None] = mapped_column(String(36))


class ApiToken(Base):
    """One generated bearer token: counted for the limit of tokens per hour."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_account_issued", "account_id", "issued_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    jti: Mapped[str] = mapped_column(String(36))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AppSecret(Base):
    """Secrets a deployment creates once and every worker shares (the token signing key
    when ``DIALBASE_TOKEN_SECRET`` is not set)."""

    __tablename__ = "app_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class ConfigRevision(Base):
    """One row whose value grows on every change of an account or a campaign.

    Workers cache accounts and campaigns; a write batch compares the revision its
    requests were checked against with this value inside its own transaction.
    """

    __tablename__ = "config_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)
