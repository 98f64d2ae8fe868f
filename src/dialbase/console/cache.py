"""A per-worker cache of one value per key, loaded at most once at a time (single-flight).

The console's live counts poll every few seconds from every open browser; the cache makes
that at most one query per campaign per ``max_age`` in each worker, however many browsers
watch. A value older than ``max_age`` is refreshed by one task; while it runs, callers get
the previous value if it is younger than ``stale_for`` (so a page never waits for the
refresh), else they wait for the refresh with everyone else.

A load that takes long stretches the age a value is kept to ``cost_factor`` times its own
duration (a count over a million leads taking 0.4 s is refreshed every 2 s, not every
second): the loads never take more than 1 / ``cost_factor`` of the database's time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Cached(Generic[K, V]):
    def __init__(
        self,
        load: Callable[[K], Awaitable[V]],
        max_age: float,
        stale_for: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        cost_factor: float = 5.0,
    ) -> None:
        self._load = load
        self.max_age = max_age
        self.stale_for = stale_for if stale_for is not None else 5 * max_age
        self.cost_factor = cost_factor
        self._clock = clock
        self._values: dict[K, tuple[float, V]] = {}
        self._kept: dict[K, float] = {}  # how long each key's value is kept
        self._loading: dict[K, asyncio.Task[V]] = {}

    async def get(self, key: K) -> V:
        now = self._clock()
        cached = self._values.get(key)
        if cached is not None and now - cached[0] < self._kept.get(key, self.max_age):
            return cached[1]
        task = self._loading.get(key)
        if task is None:
            task = asyncio.create_task(self._refresh(key))
            self._loading[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        if cached is not None and now - cached[0] < max(self.stale_for, 2 * self._kept[key]):
            return cached[1]
        return await asyncio.shield(task)

    async def _refresh(self, key: K) -> V:
        started = self._clock()
        value = await self._load(key)
        took = self._clock() - started
        self._values[key] = (started, value)
        self._kept[key] = max(self.max_age, self.cost_factor * took)
        return value

    def _finished(self, key: K, task: asyncio.Task[V]) -> None:
        if self._loading.get(key) is task:
            del self._loading[key]
        if not task.cancelled():
            task.exception()  # a failure is raised to the callers waiting, never logged twice

    def forget(self, key: K) -> None:
        """Drop the key's value (after a change the user made: show it at once)."""
        self._values.pop(key, None)
        self._kept.pop(key, None)
