"""The ``/v1/dnc`` API's request and response shapes (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, Field

from dialbase.dialer.schemas import Shape
from dialbase.dnc.models import DncEntry
from dialbase.dnc.service import MAX_NOTE_CHARS


class DncPut(Shape):
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="When the entry stops counting (ISO 8601 with an offset, in the future);"
        " none: it never does.",
    )
    note: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)


class DncEntryOut(Shape):
    number: str = Field(
        description="E.164, read with the account's default country; as sent when it"
        " cannot be read."
    )
    expires_at: datetime | None = Field(description="Null: the entry never expires.")
    note: str | None
    created_at: datetime

    @classmethod
    def of(cls, entry: DncEntry) -> DncEntryOut:
        return cls(
            number=entry.number,
            expires_at=entry.expires_at,
            note=entry.note,
            created_at=entry.created_at,
        )


class DncPage(Shape):
    entries: list[DncEntryOut] = Field(description="In force, ordered by number.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )
