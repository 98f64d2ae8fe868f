"""Bearer tokens on AddCampaignData: the checks of a token request, in order, with the
exact bodies, and the key path of TOKEN_AUTH accounts. Nothing is stored on a refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import time_machine

from dialbase.accounts.service import update_account
from dialbase.db import session_scope
from tests.compat.helpers import client_for, running_app
from tests.compat.test_tokens import KEY, SECRET, STORED, new_token
from tests.conftest import Backend
from tests.factories import all_leads, make_account, make_campaign

URL = "/ca_apis/AddCampaignData"
TOKEN_MISSING = {"status": "false", "message": "Token Should Not be Null or Empty.", "data": None}
INVALID_TOKEN = {"status": "false", "message": "Invalid Token", "data": None}
EXPIRED = {"status": "false", "message": "Token Expired", "data": None}
INVALID_ACTION = {"status": "false", "message": "Invalid action.", "data": None}
USER_MISSING = {"status": "false", "message": "Username Should Not be Null or Empty.", "data": None}
INVALID_USER = {"status": "false", "message": "Invalid User Details", "data": None}
KEY_MISSING = {"status": "false", "message": "Api Key Should Not be Null or Empty.", "data": None}
CAMPAIGN_UNKNOWN = {"status": "FAIL", "message": "No User Found or Campaign Name is Invalid"}


@pytest.fixture
def settings(backend: Backend):  # type: ignore[no-untyped-def]
    return backend.settings(token_secret=SECRET)


@pytest.fixture(autouse=True)
async def accounts(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    """ "tok" (TOKEN_AUTH) and "acme" (BASIC_AUTH), each with campaign "Sales"."""
    await make_account(sessionmaker, "tok", KEY, auth_mode="TOKEN_AUTH")
    await make_campaign(sessionmaker, "Sales", username="tok")
    await make_account(sessionmaker)
    await make_campaign(sessionmaker)


async def add(client, headers: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """POST AddCampaignData for "tok" (fields override; None drops one); HTTP 200's body."""
    body = {"userName": "tok", "campaignName": "Sales", "phoneNumber": "9000000001", **fields}
    body = {k: v for k, v in body.items() if v is not None}
    response = await client.post(URL, json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return dict(response.json())


async def stored(sessions) -> list[str]:  # type: ignore[no-untyped-def]
    return [lead.phone_number for lead in await all_leads(sessions)]


async def set_mode(sessions, mode: str, username: str = "tok") -> None:  # type: ignore[no-untyped-def]
    async with session_scope(sessions) as session:
        await update_account(session, username, auth_mode=mode)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_the_bearer_scheme_is_matched_in_any_case(client, sessionmaker, scheme):
    token = await new_token(client)
    assert await add(client, {"Authorization": f"{scheme} {token}"}) == STORED
    assert await stored(sessionmaker) == ["9000000001"]


@pytest.mark.parametrize(
    "extra",
    [
        {"apiKey": KEY},
        {"apiKey": "not-a-key-at-all"},
        {"apiKey": "acme-secret-key"},
        {"apiKey": ""},
    ],
    ids=["own-key", "garbage-key", "another-accounts-key", "empty-key"],
)
async def test_an_api_key_header_beside_a_bearer_token_is_ignored(client, sessionmaker, extra):
    token = await new_token(client)
    headers = {"Authorization": f"Bearer {token}", **extra}
    assert await add(client, headers) == STORED
    assert await stored(sessionmaker) == ["9000000001"]


async def test_a_key_in_the_body_beside_a_bearer_token_is_ignored(client, sessionmaker):
    token = await new_token(client)
    headers = {"Authorization": f"Bearer {token}"}
    assert await add(client, headers, apiKey="wrong-key-123") == STORED
    assert await add(client, headers, api_key="wrong-key-123", phoneNumber="9000000002") == STORED


async def test_body_keys_of_a_token_request_match_in_any_case(client, sessionmaker):
    token = await new_token(client)
    body = {"USERNAME": "tok", "campaignname": "Sales", "PhoneNumber": "9000000001"}
    response = await client.post(URL, json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.json() == STORED


@pytest.mark.parametrize("value", ["Bearer ", "Bearer    ", "bearer \t "])
async def test_check_1_a_blank_bearer_value(client, sessionmaker, value):
    assert await add(client, {"Authorization": value}) == TOKEN_MISSING
    # A blank token is refused before the key could be looked at.
    assert await add(client, {"Authorization": value, "apiKey": KEY}) == TOKEN_MISSING
    assert await stored(sessionmaker) == []


@pytest.mark.parametrize(
    "value",
    ["garbage", "a.b.c", "eyJhbGciOiJIUzUxMiJ9.e30.", "x" * 5000, "Bearer inner"],
    ids=["word", "three-parts", "no-signature", "long", "nested-scheme"],
)
async def test_check_2_garbage_is_an_invalid_token(client, sessionmaker, value):
    assert await add(client, {"Authorization": f"Bearer {value}"}) == INVALID_TOKEN
    assert await stored(sessionmaker) == []


async def test_check_2_a_wrong_signature_is_an_invalid_token(client, sessionmaker):
    genuine = await new_token(client)
    claims = jwt.decode(genuine, SECRET, algorithms=["HS512"])
    forged = jwt.encode(claims, "not-our-secret-" + "0123456789abcdef" * 4, "HS512")
    assert await add(client, {"Authorization": f"Bearer {forged}"}) == INVALID_TOKEN
    tampered = genuine[:-4] + ("AAAA" if not genuine.endswith("AAAA") else "BBBB")
    assert await add(client, {"Authorization": f"Bearer {tampered}"}) == INVALID_TOKEN
    assert await stored(sessionmaker) == []


async def test_check_2_a_superseded_token_is_invalid(client, sessionmaker):
    old = await new_token(client)
    assert await add(client, {"Authorization": f"Bearer {old}"}) == STORED
    new = await new_token(client)
    assert await add(client, {"Authorization": f"Bearer {old}"}, phoneNumber="111") == INVALID_TOKEN
    assert await add(client, {"Authorization": f"Bearer {new}"}, phoneNumber="222") == STORED
    assert await stored(sessionmaker) == ["9000000001", "222"]


async def test_check_3_a_token_past_its_hour_is_expired(client, sessionmaker):
    start = datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as clock:
        token = await new_token(client)
        clock.shift(timedelta(seconds=3599))
        assert await add(client, {"Authorization": f"Bearer {token}"}) == STORED
        clock.shift(timedelta(seconds=1))  # exp itself is past
        assert await add(client, {"Authorization": f"Bearer {token}"}, phoneNumber="222") == EXPIRED
    assert await stored(sessionmaker) == ["9000000001"]


async def test_check_2_before_3_an_expired_token_that_was_superseded_is_invalid(
    client, sessionmaker
):
    start = datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as clock:
        token = await new_token(client)
        assert await add(client, {"Authorization": f"Bearer {token}"}) == STORED
        clock.shift(timedelta(hours=2))
        await new_token(client)
        headers = {"Authorization": f"Bearer {token}"}
        assert await add(client, headers, phoneNumber="333") == INVALID_TOKEN
    assert await stored(sessionmaker) == ["9000000001"]


async def test_check_2_before_3_on_another_worker_that_cached_the_token(
    backend: Backend, client, sessionmaker
):
    start = datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as clock:
        token = await new_token(client)
        assert await add(client, {"Authorization": f"Bearer {token}"}) == STORED  # cached
        clock.shift(timedelta(hours=2))
        other = running_app(backend.settings(token_secret=SECRET))
        async with other as app, client_for(app) as elsewhere:
            await new_token(elsewhere)
        headers = {"Authorization": f"Bearer {token}"}
        assert await add(client, headers, phoneNumber="333") == INVALID_TOKEN


async def test_check_4_an_account_switched_back_to_basic_auth(client, sessionmaker):
    token = await new_token(client)
    assert await add(client, {"Authorization": f"Bearer {token}"}) == STORED
    await set_mode(sessionmaker, "BASIC_AUTH")
    headers = {"Authorization": f"Bearer {token}"}
    assert await add(client, headers, phoneNumber="222") == INVALID_ACTION
    # Check 4 comes before checks 5 and 6.
    assert await add(client, headers, userName=None, phoneNumber="333") == INVALID_ACTION
    assert await add(client, headers, userName="acme", phoneNumber="444") == INVALID_ACTION
    await set_mode(sessionmaker, "NONE")
    assert await add(client, headers, phoneNumber="555") == INVALID_ACTION
    # Its key works again now that it is BASIC_AUTH.
    await set_mode(sessionmaker, "BASIC_AUTH")
    assert await add(client, {"apiKey": KEY}, phoneNumber="666") == STORED
    assert await stored(sessionmaker) == ["9000000001", "666"]


async def test_check_4_comes_after_expiry(client, sessionmaker):
    start = datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as clock:
        token = await new_token(client)
        await set_mode(sessionmaker, "BASIC_AUTH")
        clock.shift(timedelta(hours=2))
        assert await add(client, {"Authorization": f"Bearer {token}"}) == EXPIRED


@pytest.mark.parametrize("username", [None, "", "   "], ids=["absent", "empty", "blank"])
async def test_check_5_a_blank_username(client, sessionmaker, username):
    token = await new_token(client)
    assert await add(client, {"Authorization": f"Bearer {token}"}, userName=username) == (
        USER_MISSING
    )
    assert await stored(sessionmaker) == []


@pytest.mark.parametrize("username", ["acme", "nobody", "TOK", "tok "])
async def test_check_6_a_username_that_is_not_the_tokens_account(client, sessionmaker, username):
    token = await new_token(client)
    headers = {"Authorization": f"Bearer {token}"}
    assert await add(client, headers, userName=username) == INVALID_USER
    assert await stored(sessionmaker) == []


async def test_the_endpoints_own_checks_follow_a_valid_token(client, sessionmaker):
    token = await new_token(client)
    headers = {"Authorization": f"Bearer {token}"}
    assert await add(client, headers, campaignName="Nope") == CAMPAIGN_UNKNOWN
    # acme's campaign "Sales" is not tok's: tok's own "Sales" gets the lead.
    assert await add(client, headers) == STORED
    assert await stored(sessionmaker) == ["9000000001"]


@pytest.mark.parametrize(
    "credentials",
    [{"headers": {"apiKey": KEY}}, {"fields": {"apiKey": KEY}}, {"fields": {"api_key": KEY}}],
    ids=["header", "body-apiKey", "body-api_key"],
)
async def test_a_token_auth_account_calling_with_its_key_and_no_token(
    client, sessionmaker, credentials
):
    await new_token(client)  # even with a current token
    answer = await add(client, credentials.get("headers"), **credentials.get("fields", {}))
    assert answer == INVALID_ACTION
    assert await stored(sessionmaker) == []


async def test_a_token_auth_account_with_a_wrong_key_is_invalid_user(client, sessionmaker):
    assert await add(client, {"apiKey": "wrong-key-123"}) == INVALID_USER
    assert await add(client) == KEY_MISSING


async def test_a_token_of_a_basic_auth_account_cannot_exist(client, sessionmaker):
    refused = await client.post(
        "/ca_apis/CAToken/generateToken", json={"userName": "acme", "apiKey": "acme-secret-key"}
    )
    assert refused.json() == INVALID_ACTION
    # A token for acme forged with our secret is still not one we issued.
    now = int(datetime.now(UTC).timestamp())
    forged = jwt.encode({"sub": "acme", "iat": now, "exp": now + 3600, "jti": "x"}, SECRET, "HS512")
    headers = {"Authorization": f"Bearer {forged}"}
    assert await add(client, headers, userName="acme") == INVALID_TOKEN


async def test_an_authorization_header_of_another_scheme_is_not_a_token_request(
    client, sessionmaker
):
    """Basic or any other scheme: the request is a key request (``apiKey`` as usual)."""
    token = await new_token(client)
    assert await add(client, {"Authorization": f"Token {token}"}) == KEY_MISSING
    basic = {"Authorization": f"Basic {token}", "apiKey": "acme-secret-key"}
    assert await add(client, basic, userName="acme") == STORED


async def test_failed_tokens_count_against_the_address_budget(backend: Backend):
    async with running_app(backend.settings(token_secret=SECRET, ip_rate_limit=3)) as app:
        # "tok" and its campaign are in the database already (the ``accounts`` fixture).
        async with client_for(app, "198.51.100.20") as client:
            body = {"userName": "tok", "campaignName": "Sales", "phoneNumber": "9000000001"}
            headers = {"Authorization": "Bearer garbage"}
            answers = [await client.post(URL, json=body, headers=headers) for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        assert [r.json() for r in answers[:3]] == [INVALID_TOKEN] * 3
        assert answers[3].headers["Retry-After"].isdigit()


async def test_a_token_auth_account_that_never_generated_a_token_calling_with_its_key(
    client, sessionmaker
):
    assert await add(client, {"apiKey": KEY}) == INVALID_ACTION
    assert await add(client, apikey=KEY, username="tok", userName=None) == INVALID_ACTION
    assert await stored(sessionmaker) == []
