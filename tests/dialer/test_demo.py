"""``serve --demo`` gives the simulated dialer something to drain."""

from __future__ import annotations

from sqlalchemy import update

from dialbase.accounts.models import Account
from dialbase.accounts.service import key_matches
from dialbase.db import session_scope
from dialbase.demo import DEMO_LEADS, DIALED, Demo, ensure_demo, simulate_line
from dialbase.leads.models import Lead
from tests.factories import campaign_running, leads_of


async def _demo(sessionmaker, saved_key: str | None = None) -> Demo:  # type: ignore[no-untyped-def]
    async with session_scope(sessionmaker) as session:
        return await ensure_demo(session, saved_key=saved_key)


async def test_the_demo_keeps_its_key_on_every_later_start(sessionmaker):
    first = await _demo(sessionmaker)
    assert first.new_key and first.api_key
    again = await _demo(sessionmaker, saved_key=first.api_key)
    assert again.api_key == first.api_key and not again.new_key
    unknown = await _demo(sessionmaker, saved_key="some-other-key")
    assert unknown.api_key is None  # kept, but not known in clear: never replaced
    async with session_scope(sessionmaker) as session:
        account = await session.get(Account, 1)
        assert account is not None and key_matches(account.api_key_hash, first.api_key)


async def test_the_demo_refills_its_dialed_campaign_once_drained(sessionmaker):
    await _demo(sessionmaker)
    async with session_scope(sessionmaker) as session:
        await session.execute(update(Lead).values(status="done"))
    refilled = await _demo(sessionmaker)
    assert refilled.refilled
    leads = await leads_of(sessionmaker, DIALED)
    assert len(leads) == 2 * DEMO_LEADS and len({lead.phone_number for lead in leads}) == 400
    assert sum(lead.status == "pending" for lead in leads) == DEMO_LEADS
    assert not (await _demo(sessionmaker)).refilled  # pending leads left: nothing added


async def test_the_demo_seeds_pending_leads_of_varied_priorities_once(sessionmaker):
    for _ in range(2):
        async with session_scope(sessionmaker) as session:
            await ensure_demo(session)
    leads = await leads_of(sessionmaker, DIALED)
    assert len(leads) == DEMO_LEADS
    assert {lead.status for lead in leads} == {"pending"}
    assert len({lead.priority for lead in leads}) >= 3
    assert await campaign_running(sessionmaker, DIALED)


def test_the_demo_printout_names_the_simulate_command():
    line = simulate_line("http://127.0.0.1:8000", Demo("demo", "KEY", []))
    assert line.startswith("DIALBASE_API_KEY=KEY dialbase dialer simulate")
    assert "--campaign 'Demo Progressive'" in line and "--url http://127.0.0.1:8000" in line
    in_venv = simulate_line("http://127.0.0.1:8000", Demo("demo", "KEY", []), ".venv/bin/dialbase")
    assert in_venv.startswith("DIALBASE_API_KEY=KEY .venv/bin/dialbase dialer simulate")
