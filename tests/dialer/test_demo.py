"""``serve --demo`` gives the simulated dialer something to drain."""

from __future__ import annotations

from dialbase.db import session_scope
from dialbase.demo import DEMO_LEADS, DIALED, Demo, ensure_demo, simulate_line
from tests.factories import campaign_running, leads_of


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
