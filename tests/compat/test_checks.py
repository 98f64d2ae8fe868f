"""Contract checks 1 to 16: each answers its exact body with HTTP 200 and changes nothing.

Every rejected request also asks to start the campaign (see ``assert_rejected``), so an
action applied by a failed request would show. The order tests send bodies that fail two
checks and expect the earlier one's answer.
"""

from __future__ import annotations

import pytest

from tests.compat.helpers import CHECK, UPDATED_ROUTED, answer, assert_rejected, updated
from tests.factories import (
    OMIT,
    all_leads,
    make_account,
    make_campaign,
    set_campaign_running,
)

pytestmark = pytest.mark.usefixtures("routed")

AGENT = {"campaignName": "Agents", "agentId": "A100"}
SKILL = {"campaignName": "Skills", "skill": "english"}


@pytest.fixture
async def globex(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    """A second account, with a campaign of its own."""
    await make_account(sessionmaker, "globex", "globex-secret-key")
    await make_campaign(sessionmaker, "Globex Sales", username="globex")


async def test_check_01_no_api_key_anywhere(client, sessionmaker):
    """Contract check 1: no header and no body key (neither apiKey nor api_key)."""
    await assert_rejected(client, sessionmaker, 1, apiKey=OMIT, api_key=OMIT)


@pytest.mark.parametrize("value", [OMIT, None, "", "   "], ids=["absent", "null", "empty", "blank"])
async def test_check_02_username_missing(client, sessionmaker, value):
    """Contract check 2: userName absent, null, empty or blank."""
    await assert_rejected(client, sessionmaker, 2, userName=value)


@pytest.mark.usefixtures("globex")
@pytest.mark.parametrize(
    "fields",
    [
        {"userName": "nobody"},
        {"apiKey": "wrong-secret-key"},
        {"apiKey": ""},
        {"apiKey": "globex-secret-key"},  # another account's key
        {"userName": "ACME"},  # user names match exactly
    ],
    ids=["unknown-user", "wrong-key", "empty-key", "other-accounts-key", "user-name-case"],
)
async def test_check_03_invalid_user_details(client, sessionmaker, fields):
    """Contract check 3: no account has this user name with this API key."""
    await assert_rejected(client, sessionmaker, 3, **fields)


@pytest.mark.parametrize("mode", ["TOKEN_AUTH", "NONE"])
async def test_check_04_account_not_basic_auth(client, sessionmaker, mode):
    """Contract check 4: the account's API Authentication is TOKEN_AUTH or NONE."""
    await make_account(sessionmaker, "tokenco", "tokenco-secret-key", auth_mode=mode)
    await make_campaign(sessionmaker, "Token Sales", username="tokenco")
    await assert_rejected(
        client,
        sessionmaker,
        4,
        userName="tokenco",
        apiKey="tokenco-secret-key",
        campaignName="Token Sales",
    )


@pytest.mark.parametrize("value", [OMIT, None, "", "   "], ids=["absent", "null", "empty", "blank"])
async def test_check_05_campaign_name_missing(client, sessionmaker, value):
    """Contract check 5: campaignName absent, null, empty or blank."""
    await assert_rejected(client, sessionmaker, 5, campaignName=value)


@pytest.mark.usefixtures("globex")
@pytest.mark.parametrize(
    "name",
    ["Nope", "Globex Sales", "sales", "Sa les"],
    ids=["unknown", "other-account", "case", "inner-space"],
)
async def test_check_06_no_such_campaign_for_the_account(client, sessionmaker, name):
    """Contract check 6: the account has no campaign of that name (exact after trimming)."""
    await assert_rejected(client, sessionmaker, 6, campaignName=name)


async def test_check_06_campaign_name_is_trimmed(client, sessionmaker):
    """Contract check 6: the name matches after trimming spaces, so this is no failure."""
    assert await answer(client, campaignName="  Sales ") != CHECK[6]


async def test_check_07_inbound_campaign(client, sessionmaker):
    """Contract check 7: the campaign is inbound."""
    await assert_rejected(client, sessionmaker, 7, campaignName="Inbound")


@pytest.mark.parametrize(
    "phone",
    [OMIT, None, "", "   ", "12", "12345678901234567", "+12", "++123", "12 34", "-123", "abc",
     "123a", "１２３", "+", True, 12.5, 12, 12345678901234567, ["123"], {"n": "123"}],
)  # fmt: skip
async def test_check_08_bad_phone_number(client, sessionmaker, phone):
    """Contract check 8: phoneNumber absent, or not `+` optional then 3 to 16 digits."""
    await assert_rejected(client, sessionmaker, 8, phoneNumber=phone)


@pytest.mark.parametrize(
    "priority", ["", "   ", "abc", 100, "100", -1, "-1", 5.5, "5.5", None, True, "1 0", [1]]
)
async def test_check_09_bad_priority(client, sessionmaker, priority):
    """Contract check 9: priority present but not an integer 0..99 (empty included)."""
    await assert_rejected(client, sessionmaker, 9, priority=priority)


@pytest.mark.parametrize(
    "expiry",
    ["", "  ", "2099-02-30", "2099-13-01", "2099/01/01", "01-01-2099", "2099-01-01T10:00:00",
     "2099-01-01 24:00:00", "2099-01-01 10:00", "2099-1-1", "tomorrow", None, 20990101],
)  # fmt: skip
async def test_check_10_bad_expiry_date(client, sessionmaker, expiry):
    """Contract check 10: expiryDate present but not a real date in one of the two formats."""
    await assert_rejected(client, sessionmaker, 10, expiryDate=expiry)


@pytest.mark.parametrize("expiry", ["2000-01-01", "2020-06-30 12:00:00"])
async def test_check_11_expiry_in_the_past(client, sessionmaker, expiry):
    """Contract check 11: expiryDate not in the future."""
    await assert_rejected(client, sessionmaker, 11, expiryDate=expiry)


@pytest.mark.parametrize("agent", [OMIT, "", "   ", None], ids=["absent", "empty", "blank", "null"])
async def test_check_12_agentwise_without_agent(client, sessionmaker, agent):
    """Contract check 12: agent-wise campaign, agentId absent or blank."""
    await assert_rejected(client, sessionmaker, 12, **{**AGENT, "agentId": agent})


@pytest.mark.parametrize("agent", ["A999", "a100", "english"])
async def test_check_13_agent_not_mapped_to_campaign(client, sessionmaker, agent):
    """Contract check 13: agent-wise campaign, agentId not assigned to it."""
    await assert_rejected(client, sessionmaker, 13, **{**AGENT, "agentId": agent})


@pytest.mark.parametrize("skill", [OMIT, "", "   ", None, "french", "English", "A100"])
async def test_check_14_skillwise_without_valid_skill(client, sessionmaker, skill):
    """Contract check 14: skill-wise campaign, skill absent, blank or not the campaign's."""
    await assert_rejected(client, sessionmaker, 14, **{**SKILL, "skill": skill})


async def test_check_15_duplicate_in_skillwise_campaign(client, sessionmaker):
    """Contract check 15: skill-wise campaign already holds the number: "Existed"."""
    assert await answer(client, **SKILL) == UPDATED_ROUTED
    await assert_rejected(client, sessionmaker, 15, checkDuplicate=True, **SKILL)
    await assert_rejected(
        client, sessionmaker, 15, checkDuplicate=True, **{**SKILL, "skill": "hindi"}
    )


@pytest.mark.parametrize(
    ("campaign", "first"),
    [({}, updated("Progressive")), (AGENT, UPDATED_ROUTED)],
    ids=["general", "agentwise"],
)
async def test_check_16_duplicate_in_other_campaigns(client, sessionmaker, campaign, first):
    """Contract check 16: any other campaign already holds the number: "Exist"."""
    assert await answer(client, **campaign) == first
    await assert_rejected(client, sessionmaker, 16, checkDuplicate=True, **campaign)


async def test_check_16_nothing_changes_on_a_running_campaign(client, sessionmaker):
    """Contract check 16, "nothing changes": a duplicate with action=stop does not stop it."""
    await answer(client)
    await set_campaign_running(sessionmaker)
    await assert_rejected(client, sessionmaker, 16, checkDuplicate=True, action="stop")


# (fields failing two checks, the earlier check that must answer)
TWO_FAILURES = [
    ({"apiKey": OMIT, "userName": OMIT}, 1),
    ({"apiKey": OMIT, "campaignName": OMIT}, 1),
    ({"userName": "", "apiKey": "wrong-secret-key"}, 2),
    ({"userName": OMIT, "phoneNumber": "x"}, 2),
    ({"apiKey": "wrong-secret-key", "campaignName": OMIT}, 3),
    ({"userName": "nobody", "phoneNumber": "x"}, 3),
    ({"campaignName": OMIT, "phoneNumber": "x"}, 5),
    ({"campaignName": "Nope", "phoneNumber": "x"}, 6),
    ({"campaignName": "Inbound", "phoneNumber": "x"}, 7),
    ({"phoneNumber": "x", "priority": "abc"}, 8),
    ({"phoneNumber": OMIT, "expiryDate": "2000-01-01"}, 8),
    ({"priority": "abc", "expiryDate": "bad"}, 9),
    ({"priority": 100, "expiryDate": "2000-01-01"}, 9),
    ({"expiryDate": "bad", "campaignName": "Agents"}, 10),
    ({"expiryDate": "2000-01-01", "campaignName": "Agents"}, 11),
    ({"expiryDate": "2000-01-01", "campaignName": "Skills"}, 11),
    ({"campaignName": "Agents", "checkDuplicate": True}, 12),
    ({**AGENT, "agentId": "A999", "checkDuplicate": True}, 13),
    ({**SKILL, "skill": "french", "checkDuplicate": True}, 14),
]


@pytest.mark.parametrize(("fields", "check"), TWO_FAILURES)
async def test_checks_answer_in_contract_order(client, sessionmaker, fields, check):
    """Contract "checks, in order": the first failing check answers, nothing is stored.

    The number is already in every campaign, so each body would also fail check 15 or 16.
    """
    for campaign in ({}, AGENT, SKILL):
        await answer(client, **campaign)
    assert len(await all_leads(sessionmaker)) == 3
    await assert_rejected(client, sessionmaker, check, **fields)


async def test_check_04_comes_before_check_05(client, sessionmaker):
    """Contract checks 4 then 5: a TOKEN_AUTH account without campaignName gets check 4."""
    await make_account(sessionmaker, "tokenco", "tokenco-secret-key", auth_mode="TOKEN_AUTH")
    fields = {"userName": "tokenco", "apiKey": "tokenco-secret-key", "campaignName": OMIT}
    await assert_rejected(client, sessionmaker, 4, **fields)
