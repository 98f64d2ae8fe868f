"""Contract "Inputs": where the API key comes from, key spelling, and each field's parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dialbase.leads.service import lead_view
from tests.compat.helpers import CHECK, answer, assert_rejected, updated
from tests.factories import OMIT, all_leads, make_account, make_campaign

pytestmark = pytest.mark.usefixtures("acme")

KEY = "acme-secret-key"
SUCCESS = updated("Progressive")


# --- apiKey: header (any case), else body apiKey / api_key ---------------------------------


@pytest.mark.parametrize("header", ["apiKey", "APIKEY", "apikey", "ApiKey"])
async def test_input_api_key_header_in_any_case(client, sessionmaker, header):
    """Contract inputs, apiKey: the header's name is case-insensitive."""
    assert await answer(client, apiKey=OMIT, headers={header: KEY}) == SUCCESS
    assert len(await all_leads(sessionmaker)) == 1


@pytest.mark.parametrize("key", ["apiKey", "api_key", "APIKEY", "Api_Key"])
async def test_input_api_key_in_body_without_header(client, sessionmaker, key):
    """Contract inputs, apiKey: with no header, the body's apiKey or api_key (any case)."""
    assert await answer(client, **{"apiKey": OMIT, key: KEY}) == SUCCESS


async def test_input_empty_api_key_header_is_check_03(client, sessionmaker):
    """Contract check 3: an empty header value is a key sent, even with a good body key."""
    await assert_rejected(client, sessionmaker, 3, headers={"apiKey": ""})


async def test_input_header_wins_over_body(client, sessionmaker):
    """Contract inputs, apiKey: the body key is used only when no header is sent."""
    await assert_rejected(client, sessionmaker, 3, headers={"apiKey": "wrong-secret-key"})
    reply = await answer(client, apiKey="wrong-secret-key", headers={"apikey": KEY})
    assert reply == SUCCESS


async def test_input_null_body_api_key_is_no_key(client, sessionmaker):
    """Contract check 1 (silent on null; project choice): "apiKey": null is no key at all."""
    await assert_rejected(client, sessionmaker, 1, apiKey=None)


# --- body keys match case-insensitively; misspelt keys are absent and stored as extras -------


async def test_input_documented_keys_match_in_any_case(client, sessionmaker):
    """Contract inputs: `username`, `PHONENUMBER`, `name`... are the documented keys."""
    fields = {
        **{"userName": OMIT, "apiKey": OMIT, "campaignName": OMIT, "phoneNumber": OMIT},
        "USERNAME": "acme",
        "apikey": KEY,
        "CampaignName": "Sales",
        "PHONENUMBER": "9876543210",
        "name": "Asha",
        "PRIORITY": "5",
        "expirydate": "2099-01-01",
        "CHECKDUPLICATE": "true",
    }
    assert await answer(client, **fields) == SUCCESS
    [lead] = await all_leads(sessionmaker)
    assert (lead.phone_number, lead.name, lead.priority, lead.extra) == (
        "9876543210",
        "Asha",
        5,
        {},
    )
    assert await answer(client, **fields) == CHECK[16]  # checkDuplicate was read


@pytest.mark.parametrize(
    ("fields", "check"),
    [
        ({"campaignName": OMIT, "campaign_nam": "Sales"}, 5),
        ({"phoneNumber": OMIT, "phone_number": "9876543210"}, 8),
        ({"userName": OMIT, "user_name": "acme"}, 2),
    ],
)
async def test_input_misspelt_required_key_counts_as_absent(client, sessionmaker, fields, check):
    """Contract inputs: a misspelt key is not the documented key; that key is absent."""
    await assert_rejected(client, sessionmaker, check, **fields)


async def test_input_misspelt_optional_key_is_an_extra_column(client, sessionmaker):
    """Contract inputs: `priorty` leaves priority absent (1) and is stored as an extra column."""
    assert await answer(client, priorty="7", expiry_date="bad", check_duplicate="true") == SUCCESS
    [lead] = await all_leads(sessionmaker)
    assert lead.priority == 1 and lead.expires_at is None
    assert lead.extra == {"priorty": "7", "expiry_date": "bad", "check_duplicate": "true"}
    assert await answer(client, check_duplicate="true") == SUCCESS  # not the duplicate check


# --- phoneNumber ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        (9876543210, "9876543210"),
        ("123", "123"),
        ("1234567890123456", "1234567890123456"),
        ("+1234567890123456", "+1234567890123456"),
        ("+919876543210", "+919876543210"),
        ("  9876543210  ", "9876543210"),
        ("0012", "0012"),
        (123, "123"),
    ],
)
async def test_input_valid_phone_numbers(client, sessionmaker, sent, stored):
    """Contract check 8 passes: `+` optional then 3 to 16 digits, trimmed, string or integer."""
    assert await answer(client, phoneNumber=sent) == SUCCESS
    [lead] = await all_leads(sessionmaker)
    assert lead.phone_number == stored


# --- checkDuplicate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "on"),
    [
        (True, True),
        ("true", True),
        ("TRUE", True),
        ("True", True),
        (False, False),
        ("false", False),
        ("yes", False),
        ("1", False),
        (1, False),
        ("", False),
        (None, False),
        (OMIT, False),
    ],
    ids=repr,
)
async def test_input_check_duplicate_values(client, sessionmaker, value, on):
    """Contract inputs, checkDuplicate: only JSON true or the string "true" (any case) is on."""
    assert await answer(client) == SUCCESS
    reply = await answer(client, checkDuplicate=value)
    assert reply == (CHECK[16] if on else SUCCESS)
    assert len(await all_leads(sessionmaker)) == (1 if on else 2)


# --- priority ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [(OMIT, 1), ("0", 0), (0, 0), (99, 99), ("99", 99), ("5", 5), (42, 42)],
    ids=repr,
)
async def test_input_valid_priority(client, sessionmaker, sent, stored):
    """Contract inputs, priority: integer 0..99 as string or JSON integer; no key means 1."""
    assert await answer(client, priority=sent) == SUCCESS
    [lead] = await all_leads(sessionmaker)
    assert lead.priority == stored


# --- expiryDate, read in the account's time zone -----------------------------------------------


async def kolkata_account(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    await make_account(sessionmaker, "mumbai", "mumbai-secret-key", timezone="Asia/Kolkata")
    await make_campaign(sessionmaker, "Mumbai Sales", username="mumbai")


MUMBAI = {"userName": "mumbai", "apiKey": "mumbai-secret-key", "campaignName": "Mumbai Sales"}


@pytest.mark.parametrize(
    ("sent", "instant"),
    [
        ("2099-06-15 10:30:00", "2099-06-15T05:00:00+00:00"),
        ("2099-06-15", "2099-06-15T18:29:59+00:00"),  # 23:59:59 in Kolkata (UTC+05:30)
        ("2099-12-31 23:59:59", "2099-12-31T18:29:59+00:00"),
        ("2099-02-28", "2099-02-28T18:29:59+00:00"),
    ],
)
async def test_input_expiry_read_in_account_time_zone(client, sessionmaker, sent, instant):
    """Contract inputs and check 11: both formats, a date alone is 23:59:59 local."""
    await kolkata_account(sessionmaker)
    assert await answer(client, expiryDate=sent, **MUMBAI) == updated("Progressive")
    [lead] = await all_leads(sessionmaker)
    assert lead.expires_at.astimezone(UTC).isoformat() == instant


async def test_input_expiry_leap_day_is_a_real_date(client, sessionmaker):
    """Contract check 10: 2096-02-29 is a real date (a leap year), so it passes."""
    assert await answer(client, expiryDate="2096-02-29") == SUCCESS


def _zone_before_23h() -> ZoneInfo:
    """A zone where it is not yet 23:00, so that today's 23:59:59 is surely ahead."""
    for name in ("Asia/Kolkata", "America/New_York"):  # 9.5 to 10.5 hours apart
        zone = ZoneInfo(name)
        if datetime.now(zone).hour < 23:
            return zone
    raise AssertionError("unreachable: the two zones cannot both be past 23:00")


async def test_input_expiry_today_date_only_is_in_the_future(client, sessionmaker):
    """Contract check 11: a date alone means 23:59:59 of it, so today (local) still passes."""
    zone = _zone_before_23h()
    await make_account(sessionmaker, "zoned", "zoned-secret-key", timezone=zone.key)
    await make_campaign(sessionmaker, "Zoned", username="zoned")
    today = datetime.now(zone).date()
    fields = {"userName": "zoned", "apiKey": "zoned-secret-key", "campaignName": "Zoned"}
    assert await answer(client, expiryDate=today.isoformat(), **fields) == SUCCESS
    [lead] = await all_leads(sessionmaker)
    local = lead.expires_at.astimezone(zone)
    assert (local.date(), local.time().isoformat()) == (today, "23:59:59")


async def test_input_expiry_yesterday_local_is_past(client, sessionmaker):
    """Contract check 11: yesterday in the account's zone has ended."""
    await kolkata_account(sessionmaker)
    yesterday = datetime.now(ZoneInfo("Asia/Kolkata")).date() - timedelta(days=1)
    await assert_rejected(client, sessionmaker, 11, expiryDate=yesterday.isoformat(), **MUMBAI)


def _local(zone: str, minutes: int) -> str:
    """The wall-clock time in ``zone``, ``minutes`` from now (computed in UTC: no DST gap)."""
    instant = datetime.now(UTC) + timedelta(minutes=minutes)
    return instant.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


async def test_input_expiry_time_ahead_in_zone_behind_utc_is_future(client, sessionmaker):
    """Contract check 11, "read in the account's time zone": New York's now + 90 min passes.

    Read as UTC it would lie hours in the past. (90 minutes: still ahead if an autumn
    wall-clock hour repeats and the earlier one is taken.)
    """
    await make_account(sessionmaker, "nyc", "nyc-secret-key-1", timezone="America/New_York")
    await make_campaign(sessionmaker, "NYC", username="nyc")
    sent = _local("America/New_York", 90)
    fields = {"userName": "nyc", "apiKey": "nyc-secret-key-1", "campaignName": "NYC"}
    assert await answer(client, expiryDate=sent, **fields) == SUCCESS
    [lead] = await all_leads(sessionmaker)
    local = lead.expires_at.astimezone(ZoneInfo("America/New_York"))
    assert local.strftime("%Y-%m-%d %H:%M:%S") == sent


async def test_input_expiry_time_passed_in_zone_ahead_of_utc_is_past(client, sessionmaker):
    """Contract check 11: Kolkata's now - 30 min has passed (read as UTC it would be ahead)."""
    await kolkata_account(sessionmaker)
    await assert_rejected(
        client, sessionmaker, 11, expiryDate=_local("Asia/Kolkata", -30), **MUMBAI
    )


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("Zoë Ñúñez 山田", "Zoë Ñúñez 山田"),
        ("  Asha  ", "Asha"),
        ("", None),
        (OMIT, None),
        (None, None),
    ],
    ids=["non-ascii", "trimmed", "empty", "absent", "null"],
)
async def test_input_name_stored(client, sessionmaker, sent, stored):
    """Contract inputs, Name: optional lead name, stored intact (non-ASCII included)."""
    assert await answer(client, Name=sent) == SUCCESS
    [lead] = await all_leads(sessionmaker)
    assert lead.name == stored


async def test_input_expiry_at_the_end_of_time_is_stored_and_exported(client, sessionmaker):
    """Contract check 10/11: 9999-12-31 is a real future date, even in a zone behind UTC.

    Its UTC instant would fall in year 10000; it is kept as the latest instant there is,
    and reading it back in the account's zone must not fail either.
    """
    await make_account(sessionmaker, "nyc", "nyc-secret-key-1", timezone="America/New_York")
    await make_campaign(sessionmaker, "NYC", username="nyc")
    fields = {"userName": "nyc", "apiKey": "nyc-secret-key-1", "campaignName": "NYC"}
    assert await answer(client, expiryDate="9999-12-31", **fields) == SUCCESS
    [lead] = await all_leads(sessionmaker)
    assert lead.expires_at == datetime.max.replace(tzinfo=UTC)
    view = lead_view(lead, ZoneInfo("Asia/Kolkata"))
    assert str(view["expiryDate"]).startswith("9999-12-31T23:59:59")
