"""The webhook API's request and response shapes (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from dialbase.dialer.schemas import Shape
from dialbase.webhooks.models import EVENT_TYPES


class WebhookPut(Shape):
    url: str = Field(description="http or https URL of a public address.", max_length=2048)
    secret: str | None = Field(
        default=None,
        description="whsec_ and the base64 of 24 to 64 random bytes. Left out: kept, or"
        " generated for a new webhook (and shown once).",
    )
    events: list[str] | None = Field(
        default=None, description=f"Enabled event types; left out: all ({', '.join(EVENT_TYPES)})."
    )
    rotate_secret: bool = Field(
        default=False, description="Replace the secret with a generated one (shown once)."
    )


class WebhookOut(Shape):
    campaign: str | None = Field(description="The campaign; null: the account's default.")
    url: str
    events: list[str]
    created_at: datetime
    updated_at: datetime
    secret: str | None = Field(
        default=None,
        description="A generated secret, in the answer that created it only; never again.",
    )


class DeliveryOut(Shape):
    event_id: str = Field(description="The webhook-id header of its deliveries.")
    type: str
    lead_id: str | None
    status: str = Field(description="pending, delivered or failed.")
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="When pending: the next attempt.")
    delivered_at: datetime | None
    last_status: int | None = Field(description="The receiver's last HTTP status.")
    last_error: str | None


class DeliveryPageOut(Shape):
    deliveries: list[DeliveryOut] = Field(description="Newest first.")
    next_after: str | None = Field(
        description="Pass as `after` for the next page; null on the last page."
    )
