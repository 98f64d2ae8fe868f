"""The limiter: Redis counts over a moving window; in-process counters over a clock minute;
a hung or dead Redis costs one short timeout per outage, not one per request.

Windows run on a fake clock (time-machine moves ``time.time``, which both ``limits``'
memory storage and its Redis moving window read: the Redis script is given the client's
time). The circuit runs on its own fake clock (it reads ``time.monotonic``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest
import time_machine

from dialbase.ratelimit import Circuit, Limiter, RedisUnavailable
from tests.conftest import REDIS_URL, RUN_ID, FakeClock, RedisPeer, needs_redis

MINUTE = 1_800_000_000.0  # a whole minute of the clock
TIMEOUT_MS = 100


def prefix() -> str:
    return f"dialbase-test-{RUN_ID}-{uuid.uuid4().hex[:8]}"


@needs_redis
async def test_no_sixty_seconds_hold_more_than_the_limit_across_a_minute_edge():
    """Four requests just before a minute's edge, two just after: the two are refused.

    A counter per clock minute weighted by overlap (the in-process counters) would let
    them through: the previous minute weighs a little under 4, rounded down to 3.
    """
    limiter = Limiter(REDIS_URL, prefix(), address_limit=100)
    with time_machine.travel(MINUTE - 0.1, tick=False) as clock:
        before = [await limiter.hit_account(1, 4) for _ in range(4)]
        clock.shift(0.6)
        after = [await limiter.hit_account(1, 4) for _ in range(2)]
        clock.shift(60)
        later = await limiter.hit_account(1, 4)
    assert before == [None] * 4
    assert all(isinstance(wait, int) and 1 <= wait <= 60 for wait in after)
    assert later is None  # the first four left the window


async def test_in_process_counters_refuse_over_the_limit_until_the_window_moves_on():
    limiter = Limiter(None, prefix(), address_limit=100)
    with time_machine.travel(MINUTE + 10, tick=False) as clock:
        within = [await limiter.hit_account(1, 3) for _ in range(4)]
        refused_address = [await limiter.hit_address("192.0.2.1") for _ in range(101)][-1]
        clock.shift(120)
        later = await limiter.hit_account(1, 3)
    assert within[:3] == [None] * 3
    assert isinstance(within[3], int) and 1 <= within[3] <= 60
    assert isinstance(refused_address, int)
    assert later is None


def test_an_open_circuit_lets_one_trial_through_after_its_cool_down():
    clock = FakeClock()
    circuit = Circuit(cool_down=5.0, clock=clock)
    assert circuit.allows()
    circuit.failed("no answer")
    assert not circuit.allows()
    clock.now += 5.0
    assert circuit.allows()  # the trial
    assert not circuit.allows()  # the others keep away while it runs
    circuit.failed("no answer")
    clock.now += 4.9
    assert not circuit.allows()
    clock.now += 0.1
    assert circuit.allows()
    circuit.succeeded()
    assert not circuit.is_open and circuit.allows() and circuit.allows()


def test_a_trial_that_never_ends_does_not_keep_the_circuit_open_forever():
    """A trial whose request was cancelled (client gone) reports nothing: after another
    cool-down, a new trial goes."""
    clock = FakeClock()
    circuit = Circuit(cool_down=5.0, clock=clock)
    circuit.failed("no answer")
    clock.now += 5.0
    assert circuit.allows()
    clock.now += 4.0
    assert not circuit.allows()
    clock.now += 1.0
    assert circuit.allows()


async def _timed_hits(limiter: Limiter, count: int) -> tuple[float, list[int | None]]:
    start = time.perf_counter()
    waits = [await limiter.hit_account(1, 5) for _ in range(count)]
    return time.perf_counter() - start, waits


async def test_a_hung_redis_costs_one_short_timeout_per_outage_then_redis_counts_again(
    redis_peer: RedisPeer, caplog: pytest.LogCaptureFixture
):
    """The peer accepts connections and never answers. Ten requests at once wait one
    timeout together and open the circuit (one warning); then requests skip Redis and
    count in process; a trial after the cool-down finds it still hung (no new warning);
    once the real Redis answers, the next trial closes the circuit and Redis counts.
    """
    caplog.set_level(logging.INFO, logger="dialbase.ratelimit")
    with time_machine.travel(MINUTE + 10):  # real pace, far from a minute's edge
        await _hung_then_back(redis_peer, caplog)


async def _hung_then_back(redis_peer: RedisPeer, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    limiter = Limiter(redis_peer.url, prefix(), 100, timeout_ms=TIMEOUT_MS, cool_down=5.0)
    limiter.circuit.clock = clock

    start = time.perf_counter()
    first = await asyncio.gather(*(limiter.hit_account(1, 5) for _ in range(10)))
    first_took = time.perf_counter() - start
    assert limiter.circuit.is_open
    assert first_took >= TIMEOUT_MS / 1000 / 2  # they did wait for Redis, once
    assert first.count(None) == 5  # counted in process: 5 a minute

    rest_took, rest = await _timed_hits(limiter, 50)
    assert all(isinstance(wait, int) for wait in rest)
    assert rest_took < first_took / 5  # 50 requests, far less than one timeout in all

    start = time.perf_counter()
    with pytest.raises(RedisUnavailable, match="circuit open"):
        await limiter.check()
    assert time.perf_counter() - start < first_took / 5  # /readyz does not wait

    clock.now += 5.0
    trial_took, _ = await _timed_hits(limiter, 1)  # still hung: the trial waits, fails
    assert trial_took >= TIMEOUT_MS / 1000 / 2
    assert limiter.circuit.is_open
    after_trial_took, _ = await _timed_hits(limiter, 50)
    assert after_trial_took < trial_took / 5

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "Redis unavailable" in warnings[0].getMessage()

    if not REDIS_URL:
        return
    redis_peer.relay_to(REDIS_URL)
    clock.now += 5.0
    back = await limiter.hit_account(1, 5)
    assert back is None  # Redis had counted nothing: in process, the limit was spent
    assert not limiter.circuit.is_open
    counted = [await limiter.hit_account(1, 5) for _ in range(5)]
    assert counted[:4] == [None] * 4 and isinstance(counted[4], int)  # Redis' count of 5
    await limiter.check()
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "Redis answers again" in m]) == 1
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
