"""The dialer's clock, set by a test (calling hours and callback times are read on it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest


class Clock:
    """The dialer's clock, set by the test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock(app: Any) -> Iterator[Clock]:
    dialer = app.services.dialer
    original = dialer.clock
    dialer.clock = fixed = Clock(datetime(2026, 12, 1, 4, 0, tzinfo=UTC))  # a Tuesday
    yield fixed
    dialer.clock = original
