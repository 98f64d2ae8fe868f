"""The tables of webhooks: the settings (per account, per campaign) and the outbox.

``webhooks`` holds one setting per account (``scope_key`` 0) and one per campaign that
overrides it (``scope_key`` = the campaign's id). ``events`` is the enabled event types
between commas (``,lead.added,lead.outcome,``), so that a write path can pick the
setting and test the event in one SQL statement (``LIKE '%,lead.added,%'``).

``webhook_events`` is the outbox: a row is written in the transaction of the change it
reports and delivered later by a worker's ``WebhookDispatcher``. ``status`` is
``pending`` until a delivery succeeds (``delivered``) or the retry window passed
(``failed``); ``claimed_until`` is a worker's lease on a pending row.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dialbase.db import Base, UTCDateTime, utcnow

BIG_ID = BigInteger().with_variant(Integer, "sqlite")


class EventType(enum.StrEnum):
    LEAD_ADDED = "lead.added"
    LEAD_OUTCOME = "lead.outcome"
    LEAD_DELETED = "lead.deleted"
    IMPORT_DONE = "import.done"
    CAMPAIGN_STARTED = "campaign.started"
    CAMPAIGN_STOPPED = "campaign.stopped"


EVENT_TYPES = tuple(item.value for item in EventType)


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Webhook(Base):
    __tablename__ = "webhooks"
    __table_args__ = (UniqueConstraint("account_id", "scope_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # The campaign it belongs to; none: the account's default.
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    scope_key: Mapped[int] = mapped_column(Integer)  # campaign_id, or 0 for the account
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(Text)  # whsec_..., needed in clear to sign
    events: Mapped[str] = mapped_column(Text)  # ",lead.added,lead.outcome,"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEvent(Base):
    __tablename__ = "webhook_events"
    __table_args__ = (
        Index("ix_webhook_events_status_next", "status", "next_attempt_at"),
        Index("ix_webhook_events_lead_id", "lead_id", "id"),
        Index("ix_webhook_events_account_id", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)  # the webhook-id header
    webhook_id: Mapped[int] = mapped_column(Integer)  # no key: the setting may be removed
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    campaign_id: Mapped[int | None] = mapped_column(Integer)
    lead_id: Mapped[int | None] = mapped_column(BigInteger)  # events of one lead go in order
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[str] = mapped_column(Text)  # JSON object: the event's own fields
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(36))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)  # the receiver's HTTP status
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
