"""Exactly-once hand-out under real concurrency: several threads, each with an application
of its own (its own database connections, SQLite writer and event loop), lease and report
until the campaign is drained. Every lead must be leased exactly as often as the retry
policy allows, and no two leases of one lead may overlap."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import defaultdict

from sqlalchemy import select

from dialbase.accounts.service import get_account
from dialbase.app import create_app
from dialbase.config import Settings
from dialbase.db import create_engine, make_sessionmaker, session_scope
from dialbase.dialer.models import Lease
from dialbase.dialer.stats import campaign_stats
from dialbase.leads.models import Lead
from tests.dialer.helpers import add_leads, running_campaign, set_campaign

WORKERS = 6
LEADS = 240
MAX_ATTEMPTS = 3


def outcome_for(phone: str, attempt: int) -> str:
    """Deterministic outcomes, so the expected number of leases per lead is known."""
    n = int(phone[-4:])
    if n % 7 == 0:
        return "do_not_call"
    return "connected" if (n + attempt) % 4 == 0 else "no_answer"


def expected_leases(phone: str) -> int:
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if outcome_for(phone, attempt) != "no_answer":
            return attempt
    return MAX_ATTEMPTS


async def _setup(settings: Settings) -> None:
    engine = create_engine(settings)
    sessions = make_sessionmaker(engine)
    await running_campaign(sessions)
    await set_campaign(sessions, max_attempts=MAX_ATTEMPTS, retry_delay=0)
    specs = ({"phone_number": f"900000{n:04d}", "priority": n % 3} for n in range(LEADS))
    await add_leads(sessions, *specs)
    await engine.dispose()


async def _drained(sessions) -> bool:  # type: ignore[no-untyped-def]
    async with session_scope(sessions) as session:
        account = await get_account(session, "acme")
        leads = (await campaign_stats(session, account, "Sales")).leads
    return leads["pending"] + leads["leased"] + leads["retry"] == 0


async def _dial(settings: Settings, seed: int, seen: list[tuple[str, int]]) -> None:
    """One dialer: a whole application of its own (its connections, writer and cache)."""
    app = create_app(settings, migrate=False)
    rng = random.Random(seed)
    async with app.lifespan():
        services = app.services
        account = await services.directory.authenticate("acme", "acme-secret-key")
        assert account is not None
        while True:
            leased = await services.dialer.lease(account, "Sales", count=rng.randint(1, 4))
            if not leased:
                if await _drained(services.sessionmaker):
                    return
                await asyncio.sleep(0.01)
                continue
            for item in leased:
                seen.append((item.phone_number, item.attempt))
                outcome = outcome_for(item.phone_number, item.attempt)
                await services.dialer.report(account, item.lease_id, outcome)


def _run_workers(settings: Settings) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(WORKERS)

    def work(seed: int) -> None:
        start.wait()
        try:
            asyncio.run(_dial(settings, seed, seen))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "the campaign was not drained"
    assert not errors, errors
    return seen


async def _leases_by_lead(settings: Settings) -> dict[str, list[Lease]]:
    engine = create_engine(settings)
    found: dict[str, list[Lease]] = defaultdict(list)
    async with session_scope(make_sessionmaker(engine)) as session:
        rows = await session.execute(
            select(Lead.phone_number, Lease).join(Lease, Lease.lead_id == Lead.id)
        )
        for phone, lease in rows:
            found[phone].append(lease)
    await engine.dispose()
    return found


def test_concurrent_dialers_lease_every_lead_exactly_as_often_as_the_policy_allows(backend):
    settings = backend.settings()
    asyncio.run(_setup(settings))
    seen = _run_workers(settings)
    phones = [f"900000{n:04d}" for n in range(LEADS)]
    assert sorted(seen) == sorted(
        (phone, attempt) for phone in phones for attempt in range(1, expected_leases(phone) + 1)
    )
    leases = asyncio.run(_leases_by_lead(settings))
    for phone in phones:
        ordered = sorted(leases[phone], key=lambda lease: lease.attempt)
        assert [lease.attempt for lease in ordered] == list(range(1, expected_leases(phone) + 1))
        assert all(lease.outcome is not None for lease in ordered)
        for earlier, later in zip(ordered, ordered[1:], strict=False):
            assert earlier.reported_at is not None and earlier.reported_at <= later.leased_at
