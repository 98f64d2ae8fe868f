"""Demo data for ``dialbase serve --demo``: one account and a campaign of each kind."""

from __future__ import annotations

import random
import shlex
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from dialbase.accounts.service import create_account, new_api_key, update_account
from dialbase.campaigns.models import Campaign
from dialbase.campaigns.service import (
    create_campaign,
    find_campaign,
    lead_count,
    set_running,
    update_campaign,
)
from dialbase.db import utcnow
from dialbase.errors import NotFound
from dialbase.leads.models import CampaignNumber, Lead

DEMO_USER = "demo"
DIALED = "Demo Progressive"
DEMO_LEADS = 200
DEMO_RETRY_DELAY = 10  # seconds, so that a simulated dialer drains it in a few minutes
DEMO_EXPIRING = 20  # every 20th lead expires a minute after the demo starts
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
    api_key: str
    campaigns: list[str]


async def ensure_demo(session: AsyncSession) -> Demo:
    """Create what is missing. The demo key is new on every start (keys are never stored)."""
    api_key = new_api_key()
    try:
        account = await update_account(session, DEMO_USER, api_key=api_key)
    except NotFound:
        account, api_key = await create_account(session, DEMO_USER, api_key=api_key)
    for spec in DEMO_CAMPAIGNS:
        name = str(spec["name"])
        if await find_campaign(session, account.id, name) is None:
            options = {k: v for k, v in spec.items() if k != "name"}
            await create_campaign(session, DEMO_USER, name, **options)  # type: ignore[arg-type]
    dialed = await find_campaign(session, account.id, DIALED)
    if dialed is not None and await lead_count(session, dialed.id) == 0:
        await seed_leads(session, dialed)
    return Demo(DEMO_USER, api_key, [str(spec["name"]) for spec in DEMO_CAMPAIGNS])


async def seed_leads(session: AsyncSession, campaign: Campaign) -> None:
    """Pending leads of varied priorities for ``dialbase dialer simulate``; starts the campaign."""
    rng = random.Random(7)
    start = utcnow() - timedelta(minutes=DEMO_LEADS)
    for n in range(DEMO_LEADS):
        phone, created = f"98000{n:05d}", start + timedelta(minutes=n)
        session.add(CampaignNumber(campaign_id=campaign.id, phone_number=phone))
        session.add(
            Lead(
                campaign_id=campaign.id,
                phone_number=phone,
                name=f"Demo Lead {n + 1}",
                priority=rng.choice((1, 1, 1, 2, 2, 3)),
                extra={"city": rng.choice(("Pune", "Delhi", "Chennai", "Kolkata"))},
                expires_at=utcnow() + timedelta(minutes=1) if n % DEMO_EXPIRING == 0 else None,
                created_at=created,
                due_at=created,
            )
        )
    await session.flush()
    await update_campaign(session, DEMO_USER, DIALED, retry_delay=DEMO_RETRY_DELAY)
    await set_running(session, campaign, True)


def simulate_line(base_url: str, demo: Demo, program: str = "dialbase") -> str:
    """The simulate command; ``program`` is how this dialbase was started (a venv path)."""
    return (
        f"DIALBASE_API_KEY={demo.api_key} {shlex.quote(program)} dialer simulate"
        f" --url {base_url}"
        f" --username {demo.username} --campaign {shlex.quote(DIALED)} --agents 10 --speed 20"
    )


def curl_line(base_url: str, demo: Demo) -> str:
    body = (
        f'{{"userName": "{demo.username}", "campaignName": "Demo Progressive",'
        ' "phoneNumber": "9876543210", "Name": "Asha Rao", "city": "Pune"}'
    )
    return (
        f"curl -s -X POST {base_url}/ca_apis/AddCampaignData"
        f" -H 'Content-Type: application/json' -H 'apiKey: {demo.api_key}' -d '{body}'"
    )
