"""Demo data for ``dialbase serve --demo``: one account and a campaign of each kind."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from dialbase.accounts.service import create_account, new_api_key, update_account
from dialbase.campaigns.service import create_campaign, find_campaign
from dialbase.errors import NotFound

DEMO_USER = "demo"
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
    return Demo(DEMO_USER, api_key, [str(spec["name"]) for spec in DEMO_CAMPAIGNS])


def curl_line(base_url: str, demo: Demo) -> str:
    body = (
        f'{{"userName": "{demo.username}", "campaignName": "Demo Progressive",'
        ' "phoneNumber": "9876543210", "Name": "Asha Rao", "city": "Pune"}'
    )
    return (
        f"curl -s -X POST {base_url}/ca_apis/AddCampaignData"
        f" -H 'Content-Type: application/json' -H 'apiKey: {demo.api_key}' -d '{body}'"
    )
