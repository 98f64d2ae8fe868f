"""Demo data for ``dialbase serve --demo``: one account and a campaign of each kind.

The demo's API key stays the same from one ``serve --demo`` to the next, so that a
server already running (or a terminal already simulating) keeps working. Keys are
stored only as hashes, so the demo's clear key is kept in a file beside a SQLite
database (``dialbase.db.demo-key``, readable by its owner only) and printed again on
every start. On PostgreSQL no file is written: the first start prints the key, later
ones keep it and say how to get a new one (``dialbase account rotate-key``).
"""

from __future__ import annotations

import os
import random
import shlex
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import typer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialbase.accounts.models import Account
from dialbase.accounts.service import create_account, key_matches
from dialbase.campaigns.models import Campaign
from dialbase.campaigns.service import (
    create_campaign,
    find_campaign,
    set_running,
    update_campaign,
)
from dialbase.db import backend_name, sqlite_path, utcnow
from dialbase.leads.models import CampaignNumber, Lead, LeadStatus
from dialbase.leads.service import add_lead

DEMO_USER = "demo"
DIALED = "Demo Progressive"
DEMO_LEADS = 200
DEMO_RETRY_DELAY = 10  # seconds, so that a simulated dialer drains it in a few minutes
DEMO_EXPIRING = 20  # every 20th lead expires a minute after the demo starts
KEY_PLACEHOLDER = "YOUR_DEMO_KEY"
# A lead in one of these states is still to be dialed: the demo refills only without any.
UNFINISHED = (LeadStatus.PENDING.value, LeadStatus.RETRY.value, LeadStatus.LEASED.value)
DEMO_CAMPAIGNS: list[dict[str, object]] = [
    {"name": "Demo Progressive", "dial_type": "Progressive"},
    {"name": "Demo Predictive", "dial_type": "Predictive"},
    {"name": "Demo Preview", "dial_type": "Preview"},
    {"name": "Demo IVR", "dial_type": "IVR"},
    {
        "name": "Demo Agentwise",
        "dial_type": "Progressive",
        "routing": "agentwise",
        "agents": ["agent1", "agent2"],
    },
    {
        "name": "Demo Skillwise",
        "dial_type": "Preview",
        "routing": "skillwise",
        "skills": ["sales", "support"],
    },
    {"name": "Demo Inbound", "dial_type": "Progressive", "direction": "inbound"},
]


@dataclass
class Demo:
    username: str
    api_key: str | None  # None: kept from an earlier start and not known in clear
    campaigns: list[str]
    new_key: bool = False
    key_file: Path | None = None
    refilled: bool = False


async def ensure_demo(session: AsyncSession, saved_key: str | None = None) -> Demo:
    """Create what is missing; keep the demo account's key (``saved_key`` if it matches).

    'Demo Progressive' gets a fresh round of pending leads whenever it has none left to
    dial (a simulated dialer drained it).
    """
    account = await session.scalar(select(Account).where(Account.username == DEMO_USER))
    new_key = account is None
    api_key: str | None
    if account is None:
        account, api_key = await create_account(session, DEMO_USER)
    else:
        known = saved_key is not None and key_matches(account.api_key_hash, saved_key)
        api_key = saved_key if known else None
    for spec in DEMO_CAMPAIGNS:
        name = str(spec["name"])
        if await find_campaign(session, account.id, name) is None:
            options = {k: v for k, v in spec.items() if k != "name"}
            await create_campaign(session, DEMO_USER, name, **options)  # type: ignore[arg-type]
    dialed = await find_campaign(session, account.id, DIALED)
    refilled = dialed is not None and await _unfinished_leads(session, dialed) == 0
    if refilled:
        assert dialed is not None
        await seed_leads(session, dialed)
    names = [str(spec["name"]) for spec in DEMO_CAMPAIGNS]
    return Demo(DEMO_USER, api_key, names, new_key=new_key, refilled=refilled)


async def _unfinished_leads(session: AsyncSession, campaign: Campaign) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Lead)
        .where(Lead.campaign_id == campaign.id, Lead.status.in_(UNFINISHED))
    )
    return int(count or 0)


def demo_key_file(database_url: str) -> Path | None:
    """Where the demo's key is kept: beside a SQLite file; nowhere for PostgreSQL."""
    if backend_name(database_url) != "sqlite":
        return None
    return Path(sqlite_path(database_url) + ".demo-key")


def read_demo_key(database_url: str) -> str | None:
    path = demo_key_file(database_url)
    if path is None:
        return None
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def save_demo_key(database_url: str, api_key: str) -> Path | None:
    """Write the key (owner-only permissions); None when there is no place or it failed."""
    path = demo_key_file(database_url)
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(api_key + "\n")
    except OSError:
        return None
    return path


async def seed_leads(session: AsyncSession, campaign: Campaign) -> None:
    """Pending leads of varied priorities for ``dialbase dialer simulate``; starts the campaign."""
    rng = random.Random(7)
    start = utcnow() - timedelta(minutes=DEMO_LEADS)
    phones = await _free_numbers(session, campaign)
    for n, phone in enumerate(phones):
        created = start + timedelta(minutes=n)
        lead = await add_lead(
            session,
            campaign.id,
            phone,
            name=f"Demo Lead {n + 1}",
            priority=rng.choice((1, 1, 1, 2, 2, 3)),
            extra={"city": rng.choice(("Pune", "Delhi", "Chennai", "Kolkata"))},
            expires_at=utcnow() + timedelta(minutes=1) if n % DEMO_EXPIRING == 0 else None,
            created_at=created,
            due_at=created,
        )
        session.add(CampaignNumber(campaign_id=campaign.id, phone_number=lead.phone_e164))
    await session.flush()
    await update_campaign(session, DEMO_USER, DIALED, retry_delay=DEMO_RETRY_DELAY)
    await set_running(session, campaign, True)


async def _free_numbers(session: AsyncSession, campaign: Campaign) -> list[str]:
    """``DEMO_LEADS`` numbers the campaign has never held (a refill adds new numbers)."""
    taken = set(
        await session.scalars(
            select(CampaignNumber.phone_number).where(CampaignNumber.campaign_id == campaign.id)
        )
    )
    found: list[str] = []
    round_ = 0
    while len(found) < DEMO_LEADS:
        candidates = (f"98{round_:03d}{n:05d}" for n in range(DEMO_LEADS))
        found += [phone for phone in candidates if phone not in taken][: DEMO_LEADS - len(found)]
        round_ += 1
    return found


def print_demo(demo: Demo, base_url: str) -> None:
    typer.echo("Demo data ready.")
    typer.echo(f"  user name: {demo.username}")
    if demo.api_key is None:
        typer.echo(
            f"  API key:   unchanged, the one printed when it was set ({KEY_PLACEHOLDER} below);"
        )
        typer.echo(
            "             dialbase keeps only its hash. A new one (the old one stops working):"
        )
        typer.echo(f"             dialbase account rotate-key --username {demo.username}")
    else:
        typer.echo(f"  API key:   {demo.api_key}")
        if demo.key_file is not None:
            typer.echo(f"             (kept in {demo.key_file}: the same on every serve --demo)")
        elif demo.new_key:
            typer.echo("             (shown once: dialbase keeps only its hash)")
    typer.echo(f"  campaigns: {', '.join(demo.campaigns)}")
    if demo.refilled:
        typer.echo(f"  '{DIALED}' has {DEMO_LEADS} new pending leads.")
    typer.echo("Add a lead:")
    typer.echo(f"  {curl_line(base_url, demo)}")
    typer.echo(f"Watch a simulated dialer drain '{DIALED}' (in another terminal):")
    program = sys.argv[0] if Path(sys.argv[0]).name == "dialbase" else "dialbase"
    typer.echo(f"  {simulate_line(base_url, demo, program)}")
    sys.stdout.flush()


def simulate_line(base_url: str, demo: Demo, program: str = "dialbase") -> str:
    """The simulate command; ``program`` is how this dialbase was started (a venv path)."""
    return (
        f"DIALBASE_API_KEY={demo.api_key or KEY_PLACEHOLDER} {shlex.quote(program)} dialer simulate"
        f" --url {base_url}"
        f" --username {demo.username} --campaign {shlex.quote(DIALED)} --agents 10 --speed 20"
    )


def curl_line(base_url: str, demo: Demo) -> str:
    body = (
        f'{{"userName": "{demo.username}", "campaignName": "Demo Progressive",'
        ' "phoneNumber": "9876543210", "Name": "Asha Rao", "city": "Pune"}'
    )
    key = demo.api_key or KEY_PLACEHOLDER
    return (
        f"curl -s -X POST {base_url}/ca_apis/AddCampaignData"
        f" -H 'Content-Type: application/json' -H 'apiKey: {key}' -d '{body}'"
    )
