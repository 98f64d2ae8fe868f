"""The shapes of ``/v1/imports`` answers (for the OpenAPI document; the routes answer
``imports.service``'s dictionaries as they are)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ImportRowOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    index: int = Field(description="0-based position of the row in the data (or the file)")
    line: int | None = Field(
        default=None, description="file imports only: the row's line, the header being line 1"
    )
    phone_number: str | None = Field(alias="phoneNumber")
    result: Literal["added", "duplicate", "rejected"]
    message: str | None = Field(description="why the row was not added")


class ImportOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    transaction_id: str = Field(alias="transactionId")
    status: Literal["queued", "running", "done"]
    total: int
    added: int
    duplicates: int
    rejected: int
    started_at: str | None = Field(alias="startedAt", description="UTC, ISO 8601")
    finished_at: str | None = Field(alias="finishedAt", description="UTC, ISO 8601")
    rows: list[ImportRowOut]
