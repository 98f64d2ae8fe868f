"""Rate limits: the ``limits`` library does the counting; this module only wires it.

With ``DIALBASE_REDIS_URL`` set, counters live in Redis, shared by every worker and host,
over a true moving window (``limits``' moving-window strategy keeps each counted
request's time in a Redis list trimmed to the limit): no 60 seconds ever hold more than
the limit. Without Redis, each process counts in memory with ``limits``' sliding-window
counter: O(1) per request (see ``SweptMemoryStorage``), exact within a clock minute, and
an approximation across the edge of two minutes (the previous minute's count is weighted
by how much of it the window still covers). The library's in-memory moving window is not
used: its clean-up task walks every key through a thread hop and stalls requests (see
docs/performance.md).

When Redis does not answer the limiter fails open onto in-process counters: losing a lead
is worse for a contact centre than a few seconds of per-process rather than shared
counting. Two things keep a dead or hung Redis (one that accepts connections and never
answers) from slowing every request:

- every call to Redis, reconnections and the client's own retries included, is bounded
  by ``DIALBASE_REDIS_TIMEOUT_MS`` (default 200 ms);
- a ``Circuit``: the first failure opens it, and for ``COOL_DOWN_SECONDS`` no request
  tries Redis at all; then one request (or one ``/readyz`` probe) is let through as a
  trial while the others keep counting in process: its success closes the circuit, its
  failure opens it for another cool-down. An outage logs one warning when the circuit
  opens and one info line when it closes, and ``/readyz`` reports the open circuit
  without contacting Redis.

The circuit is written here rather than taken from a library: ``aiobreaker`` has had no
release since 2021 and times its state with the wall clock; ``purgatory`` (maintained)
runs every call through an event bus and, once half-open, lets every concurrent call try
the failing service instead of one. What is needed is forty lines on the monotonic clock.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio  # noqa: F401  (imported whole before any thread builds a storage:

# limits reads its version from the module, and a half-imported module has none)
from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import (
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from dialbase.observability.metrics import RATE_LIMITED, REDIS_ERRORS

log = logging.getLogger("dialbase.ratelimit")
SWEEP_SECONDS = 1.0
DEFAULT_TIMEOUT_MS = 200
COOL_DOWN_SECONDS = 5.0


class SweptMemoryStorage(MemoryStorage):
    """The library's in-memory storage, sweeping expired keys at most once a second.

    The library starts its sweep over every key again after each counted request, which
    costs time in proportion to the number of accounts on every request. Reads already
    skip expired counters, so a slower sweep only bounds memory.
    """

    _last_sweep = 0.0

    async def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep >= SWEEP_SECONDS:
            self._last_sweep = now
            await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]


class RedisUnavailable(Exception):
    """Redis is not being asked: the circuit is open (the message says why and until when)."""


class Circuit:
    """Closed: calls go to Redis. Open: none do until ``cool_down`` seconds have passed,
    then one trial at a time (a trial left unresolved for a cool-down lets another go).
    """

    def __init__(
        self, cool_down: float = COOL_DOWN_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.cool_down = cool_down
        self.clock = clock
        self.is_open = False
        self.reason = ""
        self._opened_at = 0.0
        self._retry_at = 0.0
        self._trial_at: float | None = None

    def allows(self) -> bool:
        """Whether this call may go to Redis (when open, it becomes the trial)."""
        if not self.is_open:
            return True
        now = self.clock()
        if now < self._retry_at:
            return False
        if self._trial_at is not None and now < self._trial_at + self.cool_down:
            return False  # another trial is on its way
        self._trial_at = now
        return True

    def succeeded(self) -> None:
        if self.is_open and self._trial_at is not None:
            self.is_open = False
            self._trial_at = None
            log.info(
                "Redis answers again after %.0f s: rate limits are shared again",
                self.clock() - self._opened_at,
            )

    def failed(self, reason: str) -> None:
        now = self.clock()
        if not self.is_open:
            self.is_open = True
            self._opened_at = now
            self.reason = reason
            log.warning(
                "Redis unavailable (%s): counting rate limits in this process only,"
                " trying Redis again every %g s",
                self.reason,
                self.cool_down,
            )
        elif self._trial_at is None:
            return  # a call started before the circuit opened: the outage is known
        self._trial_at = None
        self._retry_at = now + self.cool_down

    def describe(self) -> str:
        now = self.clock()
        return (
            f"circuit open for {now - self._opened_at:.0f} s ({self.reason});"
            f" next try in {max(0.0, self._retry_at - now):.1f} s"
        )


class Limiter:
    def __init__(
        self,
        redis_url: str | None,
        prefix: str,
        address_limit: int,
        *,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        cool_down: float = COOL_DOWN_SECONDS,
    ) -> None:
        self.memory: RateLimiter = SlidingWindowCounterRateLimiter(SweptMemoryStorage())
        self.shared: RateLimiter | None = None
        self.storage: Storage | None = None
        self.timeout = timeout_ms / 1000
        self.circuit = Circuit(cool_down)
        if redis_url:
            self.storage = RedisStorage(
                "async+" + redis_url,
                implementation="redispy",
                key_prefix=f"{prefix}:limits",
                wrap_exceptions=True,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
            )
            self.shared = MovingWindowRateLimiter(self.storage)
        self.address_item = RateLimitItemPerMinute(address_limit)
        self._items: dict[int, RateLimitItem] = {}

    def _item(self, per_minute: int) -> RateLimitItem:
        item = self._items.get(per_minute)
        if item is None:
            item = self._items[per_minute] = RateLimitItemPerMinute(per_minute)
        return item

    async def hit_account(
        self, account_id: int, per_minute: int, endpoint: str | None = None
    ) -> int | None:
        """Count one request of an account; the Retry-After seconds when over its limit.

        Without ``endpoint``, the budget of AddCampaignData (and of the older add endpoint,
        which shares it); with one, that endpoint's own budget of the same size.
        """
        if endpoint is None:
            return await self._hit(self._item(per_minute), "account", str(account_id))
        return await self._hit(self._item(per_minute), "account", str(account_id), endpoint)

    async def hit_address(self, address: str) -> int | None:
        """Count one request that failed authentication, by client address."""
        return await self._hit(self.address_item, "address", address)

    async def address_spent(self, address: str) -> int | None:
        """Whether the address has used up its budget of failed authentications, without
        counting a request: the Retry-After seconds if so (the console's sign-in asks
        before it checks a key, so that guessing stops at the budget)."""
        return await self._hit(self.address_item, "address", address, count=_peek)

    async def _hit(
        self, item: RateLimitItem, *key: str, count: Callable[..., Any] | None = None
    ) -> int | None:
        count = count or _count
        if self.shared is not None and self.circuit.allows():
            try:
                async with asyncio.timeout(self.timeout):
                    wait = await count(self.shared, item, key)
            except Exception as exc:  # Redis down or hung: fail open onto in-process counters
                REDIS_ERRORS.inc()
                self.circuit.failed(self._why(exc))
            else:
                self.circuit.succeeded()
                return _refused(wait, key)
        return _refused(await count(self.memory, item, key), key)

    def _why(self, exc: Exception) -> str:
        if isinstance(exc, TimeoutError):
            return f"no answer within {self.timeout * 1000:.0f} ms"
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    async def check(self) -> None:
        """For ``/readyz``: raise unless Redis (when configured) answers within the timeout.

        With the circuit open, answer at once without contacting Redis, unless a trial
        is due: then this probe is the trial.
        """
        if self.storage is None:
            return
        if not self.circuit.allows():
            raise RedisUnavailable(self.circuit.describe())
        try:
            async with asyncio.timeout(self.timeout):
                answered = await self.storage.check()
            if not answered:
                raise ConnectionError("no answer to PING")
        except Exception as exc:
            REDIS_ERRORS.inc()
            self.circuit.failed(self._why(exc))
            raise RedisUnavailable(self.circuit.describe()) from exc
        self.circuit.succeeded()


_REFUSALS = {limit: RATE_LIMITED.labels(limit) for limit in ("account", "address")}


def _refused(wait: int | None, key: tuple[str, ...]) -> int | None:
    """``wait`` as it is; a refusal (a wait) is counted by limit (``account``, ``address``)."""
    if wait is not None:
        _REFUSALS[key[0]].inc()
    return wait


async def _peek(limiter: RateLimiter, item: RateLimitItem, key: tuple[str, ...]) -> int | None:
    """None while one more hit would be allowed (counting nothing), else the wait."""
    if await limiter.test(item, *key):
        return None
    stats = await limiter.get_window_stats(item, *key)
    return max(1, math.ceil(stats.reset_time - time.time()))


async def _count(limiter: RateLimiter, item: RateLimitItem, key: tuple[str, ...]) -> int | None:
    """Count one hit; None when allowed, else the whole seconds until the window has room."""
    if await limiter.hit(item, *key):
        return None
    stats = await limiter.get_window_stats(item, *key)
    return max(1, math.ceil(stats.reset_time - time.time()))
