"""The idempotency table: one row per (caller scope, Idempotency-Key).

A row is inserted (the claim) before the request runs; ``status_code`` stays NULL while
the first request is in progress and holds the kept answer once it finished. ``claim`` names
the claimant, so that a claimant whose lease lapsed cannot overwrite a newer claim.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from dialbase.db import Base, UTCDateTime


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)

    # sha256 (hex) of the caller's credential material
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    # the Idempotency-Key header as given (1-255 printable ASCII characters)
    idem_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # sha256 (hex) of method, path, query and body
    fingerprint: Mapped[str] = mapped_column(String(64))
    claim: Mapped[str] = mapped_column(String(32))
    claimed_until: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_code: Mapped[int | None] = mapped_column(Integer)
    headers: Mapped[list[Any] | None] = mapped_column(JSON)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
