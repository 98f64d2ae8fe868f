"""The dialing rules' settings on the command line: an account's default country and daily
attempt cap, a campaign's calling hours and per-outcome retry delays. Each is set, shown
and cleared; a bad value is one line on stderr and changes nothing; a running server
applies a change at once."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import text

from dialbase.config import Settings
from dialbase.db import create_engine, utcnow
from tests.cli.conftest import cli, one_line_error
from tests.compat.helpers import CHECK, answer, updated
from tests.dialer.helpers import add_leads, lease, lease_phones, report

KEY = "acme-secret-key"
SUCCESS = updated("Progressive")
ACCOUNT = ("--username", "acme")
CAMPAIGN = ("--username", "acme", "--name", "Sales")
HOURS = "mon-fri 09:00-20:00, sat 10:00-16:00"


def _run(url: str, *args: str) -> Result:
    return cli(*args, "--database-url", url)


def _setup(url: str) -> None:
    """Account acme (key ``KEY``) with its started Progressive campaign Sales."""
    made = _run(url, "account", "create", *ACCOUNT, "--api-key", KEY)
    assert made.exit_code == 0, made.output
    made = _run(url, "campaign", "create", *CAMPAIGN, "--dial-type", "Progressive")
    assert made.exit_code == 0, made.output
    assert _run(url, "campaign", "start", *CAMPAIGN).exit_code == 0


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _account(url: str) -> dict[str, Any]:
    return dict(_json(_run(url, "account", "show", *ACCOUNT, "--json")))


def _campaign(url: str) -> dict[str, Any]:
    return dict(_json(_run(url, "campaign", "show", *CAMPAIGN, "--json")))


def _table(result: Result) -> dict[str, str]:
    """The plain-text view of one record: field name -> shown value."""
    assert result.exit_code == 0, result.output
    return dict(line.split(None, 1) for line in result.stdout.splitlines())  # type: ignore[misc]


def _stored(url: str) -> tuple[Any, ...]:
    """The columns as the database holds them (None is SQL NULL, not JSON's null)."""

    async def main() -> tuple[Any, ...]:
        engine = create_engine(Settings(database_url=url))
        try:
            async with engine.connect() as conn:
                row = (
                    await conn.execute(
                        text(
                            "SELECT a.default_country, a.max_daily_attempts, c.calling_hours,"
                            " c.retry_delays IS NULL FROM accounts a"
                            " JOIN campaigns c ON c.account_id = a.id"
                        )
                    )
                ).one()
        finally:
            await engine.dispose()
        country, cap, hours, no_delays = row
        return country, cap, hours, bool(no_delays)  # SQLite answers 0 or 1

    return asyncio.run(main())


# --- account --------------------------------------------------------------------------


def test_a_new_account_has_no_default_country_and_no_daily_cap(backend):
    url = backend.database_url
    _setup(url)
    shown = _account(url)
    assert (shown["defaultCountry"], shown["maxDailyAttempts"]) == (None, 0)
    table = _table(_run(url, "account", "show", *ACCOUNT))
    assert (table["defaultCountry"], table["maxDailyAttempts"]) == ("-", "0")


def test_default_country_is_set_upper_case_shown_and_cleared(backend):
    url = backend.database_url
    _setup(url)
    changed = _json(_run(url, "account", "update", *ACCOUNT, "--default-country", " in ", "--json"))
    assert changed["defaultCountry"] == "IN"
    assert _account(url)["defaultCountry"] == "IN"
    assert _table(_run(url, "account", "show", *ACCOUNT))["defaultCountry"] == "IN"
    assert _stored(url)[0] == "IN"

    cleared = _run(url, "account", "update", *ACCOUNT, "--default-country", "")
    assert cleared.exit_code == 0, cleared.output
    assert _account(url)["defaultCountry"] is None
    assert _stored(url)[0] is None


def test_max_daily_attempts_is_set_shown_and_lifted(backend):
    url = backend.database_url
    _setup(url)
    changed = _run(url, "account", "update", *ACCOUNT, "--max-daily-attempts", "1000")
    assert changed.exit_code == 0 and _table(changed)["maxDailyAttempts"] == "1000"
    assert _account(url)["maxDailyAttempts"] == 1000
    assert _run(url, "account", "update", *ACCOUNT, "--max-daily-attempts", "3").exit_code == 0
    assert _account(url)["maxDailyAttempts"] == 3
    assert _run(url, "account", "update", *ACCOUNT, "--max-daily-attempts", "0").exit_code == 0
    assert _account(url)["maxDailyAttempts"] == 0


def test_one_setting_changed_leaves_the_others_as_they_were(backend):
    url = backend.database_url
    _setup(url)
    both = ("--default-country", "us", "--max-daily-attempts", "7", "--timezone", "Asia/Kolkata")
    assert _run(url, "account", "update", *ACCOUNT, *both).exit_code == 0
    assert _run(url, "account", "update", *ACCOUNT, "--rate-limit", "50").exit_code == 0
    shown = _account(url)
    assert (shown["defaultCountry"], shown["maxDailyAttempts"]) == ("US", 7)
    assert (shown["timezone"], shown["rateLimit"]) == ("Asia/Kolkata", 50)


def test_account_create_takes_both_settings(backend):
    url = backend.database_url
    made = _json(
        _run(
            url,
            "account",
            "create",
            *ACCOUNT,
            "--default-country",
            "gb",
            "--max-daily-attempts",
            "4",
            "--json",
        )  # fmt: skip
    )
    assert (made["defaultCountry"], made["maxDailyAttempts"]) == ("GB", 4)
    assert len(made["apiKey"]) >= 32
    shown = _account(url)
    assert (shown["defaultCountry"], shown["maxDailyAttempts"]) == ("GB", 4)
    blank = _json(_run(url, "account", "create", "--username", "b", "--default-country", "",
                       "--json"))  # fmt: skip
    assert blank["defaultCountry"] is None


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--default-country", "XX", "unknown country code 'XX': use an ISO 3166 code"),
        ("--default-country", "IND", "unknown country code 'IND'"),
        ("--default-country", "+91", "unknown country code '+91'"),
        ("--max-daily-attempts", "-1", "max daily attempts must be between 0 (no cap) and 1000"),
        ("--max-daily-attempts", "1001", "max daily attempts must be between 0 (no cap) and 1000"),
    ],
    ids=["unknown-code", "alpha-3", "dialing-code", "negative", "over-1000"],
)
def test_a_bad_account_setting_is_one_line_and_changes_nothing(backend, option, value, message):
    url = backend.database_url
    _setup(url)
    good = ("--default-country", "IN", "--max-daily-attempts", "5", "--rate-limit", "60")
    assert _run(url, "account", "update", *ACCOUNT, *good).exit_code == 0
    before = _account(url)
    # The other settings given with it are not applied either.
    other = "--timezone" if option == "--default-country" else "--default-country"
    other_value = "Asia/Kolkata" if other == "--timezone" else "US"
    refused = _run(url, "account", "update", *ACCOUNT, other, other_value, option, value)
    assert refused.exit_code == 1
    line = one_line_error(refused)
    assert line.startswith("error: ") and message in line, line
    assert _account(url) == before

    created = _run(url, "account", "create", "--username", "late", option, value)
    assert created.exit_code == 1 and message in one_line_error(created)
    missing = _run(url, "account", "show", "--username", "late")
    assert missing.exit_code == 1 and "no account named 'late'" in one_line_error(missing)


# --- campaign -------------------------------------------------------------------------


def test_a_new_campaign_has_no_calling_hours_and_no_retry_delays(backend):
    url = backend.database_url
    _setup(url)
    shown = _campaign(url)
    assert (shown["callingHours"], shown["retryDelays"]) == (None, {})
    table = _table(_run(url, "campaign", "show", *CAMPAIGN))
    assert (table["callingHours"], table["retryDelays"]) == ("-", "-")
    assert _stored(url)[2:] == (None, True)


def test_calling_hours_are_stored_canonical_shown_and_removed(backend):
    url = backend.database_url
    _setup(url)
    given = "SAT 10:00-14:00 , Mon-Fri 9:00-20:00, sat 13:00-16:00"
    changed = _json(_run(url, "campaign", "update", *CAMPAIGN, "--calling-hours", given, "--json"))
    assert changed["callingHours"] == HOURS
    assert _campaign(url)["callingHours"] == HOURS
    assert _table(_run(url, "campaign", "show", *CAMPAIGN))["callingHours"] == HOURS
    assert _stored(url)[2] == HOURS

    removed = _run(url, "campaign", "update", *CAMPAIGN, "--calling-hours", "")
    assert removed.exit_code == 0 and _table(removed)["callingHours"] == "-"
    assert _campaign(url)["callingHours"] is None
    assert _stored(url)[2] is None


def test_retry_delays_are_set_shown_and_cleared(backend):
    url = backend.database_url
    _setup(url)
    given = "failed=1800, BUSY = 120,no_answer=600"
    changed = _json(_run(url, "campaign", "update", *CAMPAIGN, "--retry-delays", given, "--json"))
    delays = {"no_answer": 600, "busy": 120, "failed": 1800}
    assert changed["retryDelays"] == delays
    assert list(_campaign(url)["retryDelays"].items()) == list(delays.items())
    table = _table(_run(url, "campaign", "show", *CAMPAIGN))
    assert table["retryDelays"] == "no_answer=600,busy=120,failed=1800"
    assert _stored(url)[3] is False

    again = _run(url, "campaign", "update", *CAMPAIGN, "--retry-delays", "busy=0,failed=2592000")
    assert again.exit_code == 0, again.output
    assert _campaign(url)["retryDelays"] == {"busy": 0, "failed": 2592000}

    cleared = _run(url, "campaign", "update", *CAMPAIGN, "--retry-delays", "")
    assert cleared.exit_code == 0 and _table(cleared)["retryDelays"] == "-"
    assert _campaign(url)["retryDelays"] == {}
    assert _stored(url)[3] is True  # SQL NULL, not JSON's null


def test_hours_and_delays_change_apart_from_each_other_and_the_retry_policy(backend):
    url = backend.database_url
    _setup(url)
    first = ("--calling-hours", HOURS, "--retry-delays", "busy=60", "--max-attempts", "5")
    assert _run(url, "campaign", "update", *CAMPAIGN, *first).exit_code == 0
    assert _run(url, "campaign", "update", *CAMPAIGN, "--retry-delay", "30").exit_code == 0
    shown = _campaign(url)
    assert (shown["callingHours"], shown["retryDelays"]) == (HOURS, {"busy": 60})
    assert (shown["maxAttempts"], shown["retryDelaySeconds"]) == (5, 30)
    assert _run(url, "campaign", "update", *CAMPAIGN, "--retry-delays", "").exit_code == 0
    assert _campaign(url)["callingHours"] == HOURS


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--calling-hours", "mon 9-17", "calling hours: cannot read 'mon 9-17': write days"),
        ("--calling-hours", "tus 09:00-10:00", "'tus' in 'tus 09:00-10:00' is not a day"),
        ("--calling-hours", "mon 18:00-09:00", "the window must start before it ends"),
        ("--calling-hours", "mon 09:00-24:30", "'24:30' in 'mon 09:00-24:30' is not a time"),
        ("--retry-delays", "busy=5,busy=6", "retry delays: 'busy' is given more than once"),
        ("--retry-delays", "busy=5,BUSY=6", "retry delays: 'busy' is given more than once"),
        ("--retry-delays", "connected=5", "'connected' is not retried: name only no_answer"),
        ("--retry-delays", "callback=5", "'callback' is not retried"),
        ("--retry-delays", "voicemail=5", "'voicemail' is not an outcome"),
        ("--retry-delays", "busy", "retry delays: cannot read 'busy': write outcome=seconds"),
        ("--retry-delays", "busy=5;failed=6", "cannot read 'busy=5;failed=6'"),
        ("--retry-delays", "busy=1.5", "cannot read 'busy=1.5'"),
        ("--retry-delays", "busy=5,,failed=6", "retry delays: an empty item"),
        ("--retry-delays", "busy=-1", "busy must be between 0 and 2592000 seconds"),
        ("--retry-delays", "failed=2592001", "failed must be between 0 and 2592000 seconds"),
    ],
    ids=[
        "hours-syntax",
        "hours-day",
        "hours-backwards",
        "hours-time",
        "delays-repeated",
        "delays-repeated-case",
        "delays-final-outcome",
        "delays-callback",
        "delays-unknown-outcome",
        "delays-no-seconds",
        "delays-separator",
        "delays-fraction",
        "delays-empty-item",
        "delays-negative",
        "delays-over-30-days",
    ],
)
def test_a_bad_campaign_setting_is_one_line_and_changes_nothing(backend, option, value, message):
    url = backend.database_url
    _setup(url)
    good = ("--calling-hours", "mon-sun 08:00-21:00", "--retry-delays", "no_answer=300")
    assert _run(url, "campaign", "update", *CAMPAIGN, *good).exit_code == 0
    before = _campaign(url)
    # The other settings given with it are not applied either.
    other = ("--retry-delays", "busy=1") if option == "--calling-hours" else ("--calling-hours", "")
    refused = _run(url, "campaign", "update", *CAMPAIGN, *other, "--max-attempts", "9",
                   option, value)  # fmt: skip
    assert refused.exit_code == 1
    line = one_line_error(refused)
    assert line.startswith("error: ") and message in line, line
    assert _campaign(url) == before


def test_settings_of_a_missing_account_or_campaign_are_one_line(backend):
    url = backend.database_url
    _setup(url)
    missing = _run(url, "campaign", "update", "--username", "acme", "--name", "Nope",
                   "--calling-hours", HOURS)  # fmt: skip
    assert missing.exit_code == 1
    assert "account 'acme' has no campaign named 'Nope'" in one_line_error(missing)
    nobody = _run(url, "account", "update", "--username", "nobody", "--default-country", "IN")
    assert nobody.exit_code == 1 and "no account named 'nobody'" in one_line_error(nobody)


# --- a running server -----------------------------------------------------------------


async def _cli(url: str, *args: str) -> None:
    done = await asyncio.to_thread(_run, url, *args)
    assert done.exit_code == 0, done.output


async def _busy_delay(client, outcome: str = "busy") -> float:  # type: ignore[no-untyped-def]
    """Lease the next lead, report ``outcome``: seconds until its next attempt."""
    [item] = (await lease(client)).json()["leases"]
    before = utcnow()
    answer = (await report(client, item["leaseId"], outcome)).json()
    assert answer["leadStatus"] == "retry", answer
    return (datetime.fromisoformat(answer["nextAttemptAt"]) - before).total_seconds()


async def test_retry_delays_changed_by_the_cli_apply_to_the_next_outcome(
    backend, client, sessionmaker
):
    url = backend.database_url
    await asyncio.to_thread(_setup, url)
    await add_leads(sessionmaker, *({"phone_number": f"900000000{n}"} for n in range(5)))
    assert await _busy_delay(client) == pytest.approx(600, abs=2)  # the campaign's retry delay

    await _cli(url, "campaign", "update", *CAMPAIGN, "--retry-delays", "busy=5")
    assert await _busy_delay(client) == pytest.approx(5, abs=2)
    assert await _busy_delay(client, "no_answer") == pytest.approx(600, abs=2)  # not named

    await _cli(url, "campaign", "update", *CAMPAIGN, "--retry-delays", "")
    assert await _busy_delay(client) == pytest.approx(600, abs=2)


def _closed_hours(now: datetime) -> str:
    """Every day's hours, none of them now (UTC: the leads' zone in this test)."""
    return "mon-sun 13:00-23:00" if now.hour < 12 else "mon-sun 01:00-11:00"


async def test_calling_hours_changed_by_the_cli_apply_to_the_next_lease(
    backend, client, sessionmaker
):
    url = backend.database_url
    await asyncio.to_thread(_setup, url)
    await add_leads(sessionmaker, {"phone_number": "9100000001"}, {"phone_number": "9100000002"})
    assert await lease_phones(client) == ["9100000001"]  # the campaign is now cached

    await _cli(url, "campaign", "update", *CAMPAIGN, "--calling-hours", _closed_hours(utcnow()))
    assert await lease_phones(client) == []

    await _cli(url, "campaign", "update", *CAMPAIGN, "--calling-hours", "")
    assert await lease_phones(client) == ["9100000002"]


async def test_max_daily_attempts_changed_by_the_cli_apply_to_the_next_lease(
    backend, client, sessionmaker
):
    url = backend.database_url
    await asyncio.to_thread(_setup, url)
    same, other = {"phone_number": "9200000001"}, {"phone_number": "9200000002"}
    await add_leads(sessionmaker, same, same, other)  # dialed in this order without a cap
    assert await lease_phones(client) == ["9200000001"]  # the account is now cached

    await _cli(url, "account", "update", *ACCOUNT, "--max-daily-attempts", "1")
    # The number was handed out once in the last 24 hours: its second lead waits.
    assert await lease_phones(client) == ["9200000002"]
    assert await lease_phones(client) == []

    # Lifting the cap frees the held lead at once (it does not wait out its 24 hours).
    await _cli(url, "account", "update", *ACCOUNT, "--max-daily-attempts", "0")
    assert await lease_phones(client) == ["9200000001"]


async def test_default_country_changed_by_the_cli_makes_local_and_e164_numbers_one(backend, client):
    url = backend.database_url
    await asyncio.to_thread(_setup, url)
    dup = {"checkDuplicate": True}
    # No default country: a number without a prefix is compared as sent.
    assert await answer(client, phoneNumber="09876543210", **dup) == SUCCESS
    assert await answer(client, phoneNumber="+919876543210", **dup) == SUCCESS

    await _cli(url, "account", "update", *ACCOUNT, "--default-country", "IN")
    assert await answer(client, phoneNumber="09876543211", **dup) == SUCCESS
    assert await answer(client, phoneNumber="+919876543211", **dup) == CHECK[16]
    assert await answer(client, phoneNumber="9876543211", **dup) == CHECK[16]

    await _cli(url, "account", "update", *ACCOUNT, "--default-country", "")
    assert await answer(client, phoneNumber="09876543212", **dup) == SUCCESS
    assert await answer(client, phoneNumber="+919876543212", **dup) == SUCCESS
