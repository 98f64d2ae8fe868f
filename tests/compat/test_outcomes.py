"""Contract "When every check passes": the lead is stored, then the action is applied."""

from __future__ import annotations

import pytest

from tests.compat.helpers import (
    UPDATED_ROUTED,
    already_started,
    answer,
    invalid_action,
    started,
    stopped,
    updated,
)
from tests.factories import (
    OMIT,
    all_leads,
    campaign_running,
    leads_of,
    make_campaign,
    set_campaign_running,
)

pytestmark = pytest.mark.usefixtures("routed")

AGENT = {"campaignName": "Agents", "agentId": "A100"}
SKILL = {"campaignName": "Skills", "skill": "english"}


@pytest.mark.parametrize("running", [False, True], ids=["stopped", "running"])
@pytest.mark.parametrize("dial_type", ["Progressive", "Predictive", "Preview", "IVR"])
async def test_outcome_no_action_general_campaign(client, sessionmaker, dial_type, running):
    """Contract outcome "no action key, any other campaign": updated {DialType}, no effect."""
    await make_campaign(sessionmaker, "Dial", dial_type=dial_type)
    await set_campaign_running(sessionmaker, "Dial", running=running)
    assert await answer(client, campaignName="Dial", Name="Asha") == updated(dial_type)
    assert await campaign_running(sessionmaker, "Dial") is running
    [lead] = await leads_of(sessionmaker, "Dial")
    assert (lead.phone_number, lead.name, lead.priority) == ("9876543210", "Asha", 1)


@pytest.mark.parametrize("running", [False, True], ids=["stopped", "running"])
@pytest.mark.parametrize(
    ("fields", "stored"),
    [(AGENT, ("A100", None)), (SKILL, (None, "english"))],
    ids=["agentwise", "skillwise"],
)
async def test_outcome_no_action_routed_campaign(client, sessionmaker, fields, stored, running):
    """Contract outcome "no action key, agent-wise or skill-wise": SuccessFully Updated."""
    campaign = fields["campaignName"]
    await set_campaign_running(sessionmaker, campaign, running=running)
    assert await answer(client, **fields) == UPDATED_ROUTED
    assert await campaign_running(sessionmaker, campaign) is running
    [lead] = await leads_of(sessionmaker, campaign)
    assert (lead.agent_id, lead.skill) == stored


@pytest.mark.parametrize(
    ("fields", "dial_type"),
    [({}, "Progressive"), (AGENT, "Predictive"), (SKILL, "Preview")],
    ids=["general", "agentwise", "skillwise"],
)
@pytest.mark.parametrize("action", ["start", "START", "Start"])
async def test_outcome_start_when_stopped_starts(client, sessionmaker, fields, dial_type, action):
    """Contract outcome "start, not running": the campaign starts; {DialType} was started."""
    campaign = fields.get("campaignName", "Sales")
    assert await answer(client, action=action, **fields) == started(dial_type)
    assert await campaign_running(sessionmaker, campaign) is True
    assert len(await leads_of(sessionmaker, campaign)) == 1


async def test_outcome_start_when_running(client, sessionmaker):
    """Contract outcome "start, running": Campaign {campaign} Is Already Started."""
    await set_campaign_running(sessionmaker)
    assert await answer(client, action="start") == already_started("Sales")
    assert await campaign_running(sessionmaker) is True
    assert len(await leads_of(sessionmaker)) == 1


async def test_outcome_second_start_is_already_started(client, sessionmaker):
    """Contract outcomes "start": the first start starts, the next finds it running."""
    assert await answer(client, action="start") == started("Progressive")
    second = await answer(client, action="start", phoneNumber="9876543211")
    assert second == already_started("Sales")
    assert [lead.phone_number for lead in await leads_of(sessionmaker)] == [
        "9876543210",
        "9876543211",
    ]


async def test_outcome_already_started_names_the_campaign_as_configured(client, sessionmaker):
    """Contract outcome "start, running": {campaign} is the name, not the name as sent."""
    await make_campaign(sessionmaker, "Spring Promo 2025", dial_type="IVR")
    await set_campaign_running(sessionmaker, "Spring Promo 2025")
    reply = await answer(client, campaignName="  Spring Promo 2025 ", action="start")
    assert reply == already_started("Spring Promo 2025")


@pytest.mark.parametrize("running", [False, True], ids=["stopped", "running"])
@pytest.mark.parametrize("action", ["stop", "STOP"])
async def test_outcome_stop_stops(client, sessionmaker, action, running):
    """Contract outcome "stop, any": the campaign stops; {DialType} Campaign Stoped."""
    await set_campaign_running(sessionmaker, running=running)
    assert await answer(client, action=action) == stopped("Progressive")
    assert await campaign_running(sessionmaker) is False
    assert len(await leads_of(sessionmaker)) == 1


@pytest.mark.parametrize("running", [False, True], ids=["stopped", "running"])
@pytest.mark.parametrize(
    "action", ["", "   ", "pause", "started", "restart", None, 1, True], ids=repr
)
async def test_outcome_blank_or_invalid_action(client, sessionmaker, action, running):
    """Contract outcome "present, but blank or any other value": no effect, lead stored."""
    await set_campaign_running(sessionmaker, running=running)
    assert await answer(client, action=action) == invalid_action("Progressive")
    assert await campaign_running(sessionmaker) is running
    assert len(await leads_of(sessionmaker)) == 1


async def test_outcome_invalid_action_on_routed_campaign_names_dial_type(client, sessionmaker):
    """Contract outcome "present, but blank or any other value" holds for routed campaigns."""
    assert await answer(client, action="go", **AGENT) == invalid_action("Predictive")


async def test_outcome_action_key_is_case_insensitive(client, sessionmaker):
    """Contract inputs: ACTION is the action key; stored lead, campaign started."""
    assert await answer(client, ACTION="start", action=OMIT) == started("Progressive")
    assert await campaign_running(sessionmaker) is True


async def test_outcome_stored_lead_holds_every_field(client, sessionmaker):
    """Contract "stored ... with its phone number, name, priority, expiry, agent, skill, extras"."""
    await answer(
        client,
        Name="Asha Rao",
        priority="7",
        expiryDate="2099-01-31 10:00:00",
        address="1 Main Street",
        **AGENT,
    )
    [lead] = await all_leads(sessionmaker)
    assert lead.phone_number == "9876543210"
    assert (lead.name, lead.priority, lead.agent_id, lead.skill) == ("Asha Rao", 7, "A100", None)
    assert lead.expires_at.isoformat() == "2099-01-31T10:00:00+00:00"
    assert lead.extra == {"address": "1 Main Street"}
