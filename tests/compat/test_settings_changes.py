"""Accounts and campaigns changed while the app runs: the very next request sees the change.

The app caches accounts and campaigns; these tests change them through the services (as
the CLI does, in its own transaction) after the app has cached them.
"""

from __future__ import annotations

import pytest

from dialbase.accounts.service import update_account
from dialbase.campaigns.service import create_campaign, update_campaign
from dialbase.db import session_scope
from tests.compat.helpers import CHECK, UPDATED_ROUTED, answer, assert_rejected, updated
from tests.factories import all_leads, make_account, make_campaign

pytestmark = pytest.mark.usefixtures("acme")

SUCCESS = updated("Progressive")


async def change_account(sessions, **changes) -> None:  # type: ignore[no-untyped-def]
    async with session_scope(sessions) as session:
        await update_account(session, "acme", **changes)


async def test_auth_mode_changed_to_token_auth_is_check_04_next(client, sessionmaker):
    """Contract check 4, no stale cache: BASIC_AUTH -> TOKEN_AUTH applies to the next request."""
    assert await answer(client) == SUCCESS
    await change_account(sessionmaker, auth_mode="TOKEN_AUTH")
    await assert_rejected(client, sessionmaker, 4, phoneNumber="111")


async def test_auth_mode_changed_to_basic_auth_is_accepted_next(client, sessionmaker):
    """Contract check 4, no stale cache: NONE -> BASIC_AUTH applies to the next request."""
    await change_account(sessionmaker, auth_mode="NONE")
    await assert_rejected(client, sessionmaker, 4)
    await change_account(sessionmaker, auth_mode="BASIC_AUTH")
    assert await answer(client) == SUCCESS


async def test_campaign_created_while_running_is_found_next(client, sessionmaker):
    """Contract check 6, no stale cache: a campaign created after a miss is found."""
    await assert_rejected(client, sessionmaker, 6, campaignName="Renewals")
    async with session_scope(sessionmaker) as session:
        await create_campaign(session, "acme", "Renewals", dial_type="IVR")
    assert await answer(client, campaignName="Renewals") == updated("IVR")


async def test_account_created_while_running_is_found_next(client, sessionmaker):
    """Contract check 3, no stale cache: an account created after a miss is found."""
    fields = {"userName": "late", "apiKey": "late-secret-key", "campaignName": "Late"}
    await assert_rejected(client, sessionmaker, 3, **fields)
    await make_account(sessionmaker, "late", "late-secret-key")
    await make_campaign(sessionmaker, "Late", username="late")
    assert await answer(client, **fields) == SUCCESS


async def test_api_key_rotated_while_running(client, sessionmaker):
    """Contract check 3, no stale cache: the old key stops working at once, the new one works."""
    assert await answer(client) == SUCCESS
    await change_account(sessionmaker, api_key="rotated-secret-key")
    await assert_rejected(client, sessionmaker, 3, phoneNumber="111")
    assert await answer(client, apiKey="rotated-secret-key", phoneNumber="222") == SUCCESS


async def test_agents_changed_while_running(client, sessionmaker):
    """Contract check 13, no stale cache: agent mapping changes apply to the next request."""
    await make_campaign(sessionmaker, "Agents", routing="agentwise", agents=["A100"])
    fields = {"campaignName": "Agents"}
    assert await answer(client, agentId="A100", **fields) == UPDATED_ROUTED
    await assert_rejected(client, sessionmaker, 13, agentId="A200", **fields)
    async with session_scope(sessionmaker) as session:
        await update_campaign(session, "acme", "Agents", agents=["A200"])
    assert await answer(client, agentId="A200", phoneNumber="111", **fields) == UPDATED_ROUTED
    await assert_rejected(client, sessionmaker, 13, agentId="A100", phoneNumber="222", **fields)


async def test_time_zone_changed_while_running(client, sessionmaker):
    """Contract check 11, "read in the account's time zone": the zone as of now."""
    assert await answer(client, expiryDate="2099-06-15") == SUCCESS
    await change_account(sessionmaker, timezone="Asia/Kolkata")
    assert await answer(client, expiryDate="2099-06-15", phoneNumber="111") == SUCCESS
    instants = [lead.expires_at.isoformat() for lead in await all_leads(sessionmaker)]
    assert instants == ["2099-06-15T23:59:59+00:00", "2099-06-15T18:29:59+00:00"]


async def test_check_answers_stay_exact_after_changes(client, sessionmaker):
    """Contract checks 4 and 16 after a change: the duplicate still found, once BASIC again."""
    assert await answer(client, checkDuplicate=True) == SUCCESS
    await change_account(sessionmaker, auth_mode="TOKEN_AUTH")
    await assert_rejected(client, sessionmaker, 4, checkDuplicate=True)
    await change_account(sessionmaker, auth_mode="BASIC_AUTH")
    assert await answer(client, checkDuplicate=True) == CHECK[16]
