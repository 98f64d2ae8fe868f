"""Generate Token (``POST /ca_apis/CAToken/generateToken``): its checks in order, the JWT it
answers, the limit of 10 tokens an hour, and newer tokens superseding older ones."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import time_machine
from sqlalchemy import func, select

from dialbase.accounts.models import ApiToken
from dialbase.db import session_scope
from tests.conftest import Backend
from tests.factories import all_leads, make_account, make_campaign

TOKEN_URL = "/ca_apis/CAToken/generateToken"
ADD_URL = "/ca_apis/AddCampaignData"
SECRET = "a-test-signing-secret-of-64-bytes-0123456789abcdef0123456789abcd"
KEY = "tok-secret-key"

KEY_MISSING = {"status": "false", "message": "Api Key Should Not be Null or Empty.", "data": None}
USER_NULL = {"status": "false", "message": "UserName is null", "data": None}
INVALID_LOGIN = {"status": "false", "message": "Invalid userName or apiKey", "data": None}
INVALID_ACTION = {"status": "false", "message": "Invalid action.", "data": None}
INVALID_TOKEN = {"status": "false", "message": "Invalid Token", "data": None}
STORED = {"status": "Success", "message": "SuccessFully Updated Progressive Campaign"}


@pytest.fixture
def settings(backend: Backend):  # type: ignore[no-untyped-def]
    """A known signing secret, so that the tests can read the tokens' claims."""
    return backend.settings(token_secret=SECRET)


@pytest.fixture
async def accounts(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    """ "tok" (TOKEN_AUTH) and "acme" (BASIC_AUTH), each with campaign "Sales";
    "off" (NONE)."""
    await make_account(sessionmaker, "tok", KEY, auth_mode="TOKEN_AUTH")
    await make_campaign(sessionmaker, "Sales", username="tok")
    await make_account(sessionmaker)
    await make_campaign(sessionmaker)
    await make_account(sessionmaker, "off", "off-secret-key", auth_mode="NONE")


pytestmark = pytest.mark.usefixtures("accounts")


async def generate(
    client, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
):  # type: ignore[no-untyped-def]
    return await client.post(TOKEN_URL, json=body if body is not None else {}, headers=headers)


async def new_token(client, username: str = "tok", key: str = KEY) -> str:  # type: ignore[no-untyped-def]
    response = await generate(client, {"userName": username, "apiKey": key})
    assert response.status_code == 200, response.text
    data = response.json()
    assert set(data) == {"token", "message"} and data["message"] == ""
    return str(data["token"])


async def add_with(client, token: str, phone: str, username: str = "tok"):  # type: ignore[no-untyped-def]
    body = {"userName": username, "campaignName": "Sales", "phoneNumber": phone}
    response = await client.post(ADD_URL, json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


async def token_rows(sessions) -> int:  # type: ignore[no-untyped-def]
    async with session_scope(sessions, read_only=True) as session:
        return int(await session.scalar(select(func.count()).select_from(ApiToken)) or 0)


# Checks 1 to 4, each with HTTP 200 and exactly this body.
@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        ({"userName": "tok"}, None, KEY_MISSING),
        ({}, None, KEY_MISSING),
        ({"userName": "tok", "apiKey": None}, None, KEY_MISSING),
        ({"userName": "tok", "api_key": None}, None, KEY_MISSING),
        ({"apiKey": KEY}, None, USER_NULL),
        ({"userName": "", "apiKey": KEY}, None, USER_NULL),
        ({"userName": "   ", "apiKey": KEY}, None, USER_NULL),
        ({"userName": None, "apiKey": KEY}, None, USER_NULL),
        ({}, {"apiKey": KEY}, USER_NULL),
        ({"userName": "tok", "apiKey": ""}, None, INVALID_LOGIN),
        ({"userName": "tok"}, {"apiKey": ""}, INVALID_LOGIN),
        ({"userName": "tok", "apiKey": "wrong-key-123"}, None, INVALID_LOGIN),
        ({"userName": "nobody", "apiKey": KEY}, None, INVALID_LOGIN),
        ({"userName": "acme", "apiKey": KEY}, None, INVALID_LOGIN),  # another account's key
        ({"userName": "TOK", "apiKey": KEY}, None, INVALID_LOGIN),  # user names are exact
        ({"userName": "acme", "apiKey": "wrong-key-123"}, None, INVALID_LOGIN),  # 3 before 4
        ({"userName": "acme", "apiKey": "acme-secret-key"}, None, INVALID_ACTION),
        ({"userName": "off", "apiKey": "off-secret-key"}, None, INVALID_ACTION),
        ({"userName": "acme"}, {"apiKey": "acme-secret-key"}, INVALID_ACTION),
    ],
    ids=[
        "1-no-key",
        "1-empty-body",
        "1-null-key",
        "1-null-api_key",
        "2-no-username",
        "2-empty-username",
        "2-blank-username",
        "2-null-username",
        "2-header-key-no-username",
        "3-empty-key",
        "3-empty-header-key",
        "3-wrong-key",
        "3-unknown-user",
        "3-another-accounts-key",
        "3-username-case",
        "3-wrong-key-basic-account",
        "4-basic-auth",
        "4-none",
        "4-basic-auth-header-key",
    ],
)
async def test_generate_token_checks_in_order(client, sessionmaker, body, headers, expected):
    response = await generate(client, body, headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == expected
    assert await token_rows(sessionmaker) == 0


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({"userName": "tok", "apiKey": KEY}, None),
        ({"userName": "tok", "api_key": KEY}, None),
        ({"username": "tok", "apikey": KEY}, None),
        ({"USERNAME": "tok", "APIKEY": KEY}, None),
        ({"userName": "tok"}, {"apiKey": KEY}),
        ({"userName": "tok"}, {"APIKEY": KEY}),
        ({"userName": "tok", "apiKey": "wrong-key-123"}, {"apiKey": KEY}),  # header wins
    ],
    ids=[
        "body-apiKey",
        "body-api_key",
        "lowercase",
        "uppercase",
        "header",
        "header-any-case",
        "header-wins",
    ],
)
async def test_generate_token_answers_an_hs512_jwt_valid_for_an_hour(client, body, headers):
    before = int(datetime.now(UTC).timestamp())
    response = await generate(client, body, headers)
    assert response.status_code == 200, response.text
    data = response.json()
    assert set(data) == {"token", "message"} and data["message"] == ""
    token = data["token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS512"
    claims = jwt.decode(token, SECRET, algorithms=["HS512"])
    assert claims["sub"] == "tok"
    assert before - 1 <= claims["iat"] <= before + 5
    assert claims["exp"] == claims["iat"] + 3600
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert await add_with(client, token, "9000000001") == STORED


async def test_every_token_has_its_own_jti_and_the_newest_supersedes_the_others(
    client, sessionmaker
):
    first = await new_token(client)
    assert await add_with(client, first, "9000000001") == STORED
    second = await new_token(client)
    ids = {jwt.decode(t, SECRET, algorithms=["HS512"])["jti"] for t in (first, second)}
    assert len(ids) == 2
    assert await add_with(client, first, "9000000002") == INVALID_TOKEN
    assert await add_with(client, second, "9000000003") == STORED
    assert [lead.phone_number for lead in await all_leads(sessionmaker)] == [
        "9000000001",
        "9000000003",
    ]


async def test_tokens_of_two_accounts_do_not_supersede_each_other(client, sessionmaker):
    await make_account(sessionmaker, "tok2", "tok2-secret-key", auth_mode="TOKEN_AUTH")
    await make_campaign(sessionmaker, "Sales", username="tok2")
    mine = await new_token(client)
    theirs = await new_token(client, "tok2", "tok2-secret-key")
    assert await add_with(client, mine, "9000000001") == STORED
    assert await add_with(client, theirs, "9000000002", username="tok2") == STORED
    # A valid token of another account is not this account's token.
    invalid_user = {"status": "false", "message": "Invalid User Details", "data": None}
    assert await add_with(client, theirs, "9000000003", username="tok") == invalid_user


LIMIT_MESSAGE = (
    "Token limit reached: at most 10 tokens an hour; the next can be generated at {} UTC."
)


async def test_an_eleventh_token_within_an_hour_is_429_saying_when_the_next_may_come(
    client, sessionmaker
):
    start = datetime(2026, 11, 28, 10, 0, 2, 400_000, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as clock:
        tokens = []
        for _ in range(10):
            tokens.append(await new_token(client))
            clock.shift(timedelta(minutes=5))  # the last at 10:45:02.4
        clock.move_to(datetime(2026, 11, 28, 10, 59, 0, tzinfo=UTC))
        refused = await generate(client, {"userName": "tok", "apiKey": KEY})
        assert refused.status_code == 429
        assert refused.json() == {
            "status": "false",
            "message": LIMIT_MESSAGE.format("2026-11-28 11:00:03"),  # the first + 1 h, rounded up
            "data": None,
        }
        assert refused.headers["Retry-After"] == "63"
        assert refused.headers["content-type"] == "application/json"
        # The refusal issued nothing: the newest token still works.
        assert await add_with(client, tokens[-1], "9000000001") == STORED
        assert await token_rows(sessionmaker) <= 10

        clock.move_to(datetime(2026, 11, 28, 11, 0, 3, tzinfo=UTC))
        assert (await generate(client, {"userName": "tok", "apiKey": KEY})).status_code == 200
        again = await generate(client, {"userName": "tok", "apiKey": KEY})
        assert again.status_code == 429
        assert again.json()["message"] == LIMIT_MESSAGE.format("2026-11-28 11:05:03")
        assert again.headers["Retry-After"] == "300"


async def test_the_token_limit_is_per_account(client, sessionmaker):
    await make_account(sessionmaker, "tok2", "tok2-secret-key", auth_mode="TOKEN_AUTH")
    for _ in range(10):
        await new_token(client)
    assert (await generate(client, {"userName": "tok", "apiKey": KEY})).status_code == 429
    await new_token(client, "tok2", "tok2-secret-key")


async def test_concurrent_requests_never_get_an_eleventh_token(client, sessionmaker):
    body = {"userName": "tok", "apiKey": KEY}
    responses = await asyncio.gather(*(generate(client, body) for _ in range(16)))
    assert sorted(r.status_code for r in responses) == [200] * 10 + [429] * 6
    tokens = [r.json()["token"] for r in responses if r.status_code == 200]
    assert len(set(tokens)) == 10
    # Exactly one of them, the last committed, is the account's current token.
    answers = [await add_with(client, t, f"90000000{i:02d}") for i, t in enumerate(tokens)]
    assert sorted(a["status"] for a in answers) == ["Success"] + ["false"] * 9


async def test_tokens_older_than_an_hour_are_pruned(client, sessionmaker):
    start = datetime(2026, 11, 28, 8, 0, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as clock:
        for _ in range(5):
            await new_token(client)
        clock.shift(timedelta(hours=2))
        await new_token(client)
    assert await token_rows(sessionmaker) == 1


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "message"),
    [
        (b"not json", "application/json", 400, "The request body must be a JSON object."),
        (b"[1, 2]", "application/json", 400, "The request body must be a JSON object."),
        (b'"text"', "application/json", 400, "The request body must be a JSON object."),
    ],
    ids=["not-json", "array", "string"],
)
async def test_a_body_that_is_not_a_json_object_is_400(
    client, sessionmaker, raw, content_type, status, message
):
    response = await client.post(TOKEN_URL, content=raw, headers={"Content-Type": content_type})
    assert response.status_code == status
    assert response.json() == {"status": "false", "message": message, "data": None}
    assert await token_rows(sessionmaker) == 0


async def test_an_oversized_body_is_413(client, sessionmaker):
    body = {"userName": "tok", "apiKey": KEY, "padding": "x" * (70 * 1024)}
    response = await client.post(TOKEN_URL, json=body)
    assert response.status_code == 413
    assert response.json()["status"] == "false"
    assert await token_rows(sessionmaker) == 0


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_other_methods_are_405_in_the_compat_shape(client, method):
    response = await client.request(method, TOKEN_URL)
    assert response.status_code == 405
    assert set(response.json()) == {"status", "message", "data"}


def _forged(claims: dict[str, Any], secret: str = SECRET, alg: str = "HS512") -> str:
    return jwt.encode(claims, secret, algorithm=alg)


async def test_a_jwt_we_did_not_issue_is_invalid_even_if_signed_with_our_secret(client):
    """Our secret but a jti we never issued (or none): not a token we issued."""
    genuine = await new_token(client)
    claims = jwt.decode(genuine, SECRET, algorithms=["HS512"])
    assert await add_with(client, _forged({**claims, "jti": "made-up"}), "1001") == INVALID_TOKEN
    no_jti = {k: v for k, v in claims.items() if k != "jti"}
    assert await add_with(client, _forged(no_jti), "1002") == INVALID_TOKEN
    assert await add_with(client, _forged(claims, alg="HS256"), "1003") == INVALID_TOKEN
    unsigned = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims) + "."
    assert await add_with(client, unsigned, "1004") == INVALID_TOKEN
    assert await add_with(client, genuine, "1005") == STORED


def _b64(value: dict[str, Any]) -> str:
    import json

    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
