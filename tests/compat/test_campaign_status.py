"""Campaign status (``GET /ca_apis/campaignStatus``) and start/stop (``PUT
/ca_apis/setCampaignStatus``): the checks in order with their exact bodies, the requests
real clients send (header key, body on a GET, query strings, bearer tokens), ``Position``,
the per-endpoint rate limits and a database lost mid-change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select, text, update

from dialbase.accounts.models import Account
from dialbase.campaigns.models import Campaign
from dialbase.compat import campaign_status
from dialbase.db import session_scope
from dialbase.leads.models import Lead
from tests.compat.helpers import client_for, running_app
from tests.conftest import Backend
from tests.factories import (
    make_account,
    make_campaign,
    running_campaigns,
    set_campaign_running,
)

STATUS_URL = "/ca_apis/campaignStatus"
SET_URL = "/ca_apis/setCampaignStatus"
ADD_URL = "/ca_apis/AddCampaignData"
TOKEN_URL = "/ca_apis/CAToken/generateToken"
KEY = "acme-secret-key"
TOK_KEY = "tok-secret-key"
KEY_HEADER = {"apiKey": KEY}

KEY_MISSING = {"status": "false", "message": "Api Key Should Not be Null or Empty.", "data": None}
USER_MISSING = {"status": "false", "message": "Username Should Not be Null or Empty.", "data": None}
INVALID_USER = {"status": "false", "message": "Invalid User Details", "data": None}
INVALID_ACTION = {"status": "false", "message": "Invalid action.", "data": None}
TOKEN_MISSING = {"status": "false", "message": "Token Should Not be Null or Empty.", "data": None}
INVALID_TOKEN = {"status": "false", "message": "Invalid Token", "data": None}
MANDATORY = {"status": "failure", "message": "All parameters are mandatory"}
NO_RECORD = {"status": "failure", "message": "no record found"}
NOT_OUTBOUND = {"status": "failure", "message": "The selected campaign is not outbound"}
STARTED = {"status": "SUCCESS", "message": "SUCCESSFULLY UPDATED, Progressive was started"}
STOPPED = {"status": "SUCCESS", "message": "SUCCESSFULLY UPDATED, Progressive was stopped"}
NOT_JSON = {"status": "false", "message": "The request body must be a JSON object.", "data": None}
DOWN = {
    "status": "false",
    "message": "The database is unavailable; nothing was stored. Try again shortly.",
    "data": None,
}


@pytest.fixture
async def accounts(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    """acme (BASIC_AUTH): "Sales" (Progressive), "Calls" (Predictive), "Inbound";
    tok (TOKEN_AUTH): "Sales"; off (NONE)."""
    await make_account(sessionmaker)
    await make_campaign(sessionmaker)
    await make_campaign(sessionmaker, "Calls", dial_type="Predictive")
    await make_campaign(sessionmaker, "Inbound", direction="inbound")
    await make_account(sessionmaker, "tok", TOK_KEY, auth_mode="TOKEN_AUTH")
    await make_campaign(sessionmaker, "Sales", username="tok")
    await make_account(sessionmaker, "off", "off-secret-key", auth_mode="NONE")


pytestmark = pytest.mark.usefixtures("accounts")


async def campaign_id(sessions, name: str = "Sales", username: str = "acme") -> int:  # type: ignore[no-untyped-def]
    async with session_scope(sessions, read_only=True) as session:
        found = await session.scalar(
            select(Campaign.id)
            .join(Account, Account.id == Campaign.account_id)
            .where(Campaign.name == name, Account.username == username)
        )
    assert found is not None
    return int(found)


async def campaign_running(sessions, name: str = "Sales", username: str = "acme") -> bool:  # type: ignore[no-untyped-def]
    async with session_scope(sessions, read_only=True) as session:
        found = await session.get(Campaign, await campaign_id(sessions, name, username))
        assert found is not None
        return found.running


def status_of(id_: int, position: str, name: str = "Sales", user: str = "acme") -> dict[str, Any]:
    element = {"CampaignID": str(id_), "CampaignName": name, "UserName": user, "Position": position}
    return {"status": "success", "message": [element]}


async def get_status(client, *, headers=None, params=None, body: Any = None):  # type: ignore[no-untyped-def]
    """A GET as the hosted product documents it: the JSON body on a GET."""
    content = None if body is None else orjson.dumps(body)
    return await client.request("GET", STATUS_URL, headers=headers, params=params, content=content)


async def status_answer(client, **kwargs: Any) -> Any:  # type: ignore[no-untyped-def]
    response = await get_status(client, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


async def set_answer(client, body: Any = None, *, headers=None, params=None) -> Any:  # type: ignore[no-untyped-def]
    response = await client.put(SET_URL, json=body, headers=headers, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


async def token(client, username: str = "tok", key: str = TOK_KEY) -> str:  # type: ignore[no-untyped-def]
    response = await client.post(TOKEN_URL, json={"userName": username, "apiKey": key})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


# --- campaignStatus: the checks in order --------------------------------------------


async def test_status_of_a_new_campaign_with_the_key_header_and_a_json_body_on_a_get(
    client, sessionmaker
):
    body = {"userName": "acme", "campaignName": "Sales"}
    answer = await status_answer(client, headers=KEY_HEADER, body=body)
    assert answer == status_of(await campaign_id(sessionmaker), "READY")


async def test_status_from_the_query_string_with_lowercase_names_and_the_key_in_it(
    client, sessionmaker
):
    params = {"username": "acme", "campaignname": " Calls ", "api_key": KEY}
    answer = await status_answer(client, params=params)
    assert answer == status_of(await campaign_id(sessionmaker, "Calls"), "READY", "Calls")


async def test_status_body_wins_over_the_query_string(client, sessionmaker):
    answer = await status_answer(
        client,
        headers=KEY_HEADER,
        params={"userName": "acme", "campaignName": "Calls"},
        body={"CAMPAIGNNAME": "Sales"},
    )
    assert answer == status_of(await campaign_id(sessionmaker), "READY")


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({}, {"userName": "acme", "campaignName": "Sales"}, KEY_MISSING),  # check 1
        ({}, {}, KEY_MISSING),
        (KEY_HEADER, {"campaignName": "Sales"}, MANDATORY),  # check 2
        (KEY_HEADER, {"userName": "  ", "campaignName": "Sales"}, MANDATORY),
        (KEY_HEADER, {"userName": "acme"}, MANDATORY),
        (KEY_HEADER, {"userName": "acme", "campaignName": None}, MANDATORY),
        (KEY_HEADER, {"userName": "nobody", "campaignName": "Sales"}, NO_RECORD),  # check 3
        ({"apiKey": "wrong"}, {"userName": "acme", "campaignName": "Sales"}, NO_RECORD),
        ({"apiKey": ""}, {"userName": "acme", "campaignName": "Sales"}, NO_RECORD),
        ({"apiKey": TOK_KEY}, {"userName": "tok", "campaignName": "Sales"}, INVALID_ACTION),  # 4
        ({"apiKey": "off-secret-key"}, {"userName": "off", "campaignName": "X"}, INVALID_ACTION),
        (KEY_HEADER, {"userName": "acme", "campaignName": "Nope"}, NO_RECORD),  # check 5
        (KEY_HEADER, {"userName": "acme", "campaignName": "sales"}, NO_RECORD),
    ],
)
async def test_status_checks_in_order(client, headers, body, expected):
    assert await status_answer(client, headers=headers, body=body) == expected


async def test_status_of_another_accounts_campaign_is_no_record(client, sessionmaker):
    await make_account(sessionmaker, "other", "other-secret-key")
    body = {"userName": "other", "campaignName": "Calls"}
    answer = await status_answer(client, headers={"apiKey": "other-secret-key"}, body=body)
    assert answer == NO_RECORD


async def test_status_not_a_json_object_is_400(client):
    for content in (b"[1, 2]", b"userName=acme", b'"x"'):
        response = await client.request("GET", STATUS_URL, headers=KEY_HEADER, content=content)
        assert response.status_code == 400 and response.json() == NOT_JSON


async def test_status_oversized_body_is_413(client):
    content = b'{"userName": "' + b"a" * 70_000 + b'"}'
    response = await client.request("GET", STATUS_URL, headers=KEY_HEADER, content=content)
    assert response.status_code == 413
    assert response.json() == {
        "status": "false",
        "message": "The request body is larger than 65536 bytes.",
        "data": None,
    }


async def test_status_nul_in_a_name_is_400_not_a_database_error(client):
    body = {"userName": "acme", "campaignName": "Sa\x00les"}
    response = await get_status(client, headers=KEY_HEADER, body=body)
    assert response.status_code == 400
    assert response.json() == {
        "status": "false",
        "message": "The value of 'campaignname' contains a NUL character (U+0000).",
        "data": None,
    }


async def test_other_methods_on_status_are_405(client):
    response = await client.post(STATUS_URL, json={})
    assert response.status_code == 405
    assert response.json()["status"] == "false"


# --- Position --------------------------------------------------------------------


async def add_leads(client, *phones: str, **extra: Any) -> None:  # type: ignore[no-untyped-def]
    for phone in phones:
        body = {"userName": "acme", "apiKey": KEY, "campaignName": "Sales", "phoneNumber": phone}
        response = await client.post(ADD_URL, json={**body, **extra})
        assert response.json()["status"] == "Success", response.text


async def set_statuses(sessions, **by_phone: str) -> None:  # type: ignore[no-untyped-def]
    async with session_scope(sessions) as session:
        for phone, status in by_phone.items():
            await session.execute(
                update(Lead).where(Lead.phone_number == phone.lstrip("p")).values(status=status)
            )


async def position(client) -> str:  # type: ignore[no-untyped-def]
    body = {"userName": "acme", "campaignName": "Sales"}
    answer = await status_answer(client, headers=KEY_HEADER, body=body)
    return str(answer["message"][0]["Position"])


async def test_position_running_ready_and_completed(client, sessionmaker):
    assert await position(client) == "READY"  # no leads yet
    await add_leads(client, "9000000001", "9000000002")
    assert await position(client) == "READY"
    await set_campaign_running(sessionmaker)
    assert await position(client) == "RUNNING"
    await set_campaign_running(sessionmaker, running=False)
    assert await position(client) == "READY"
    await set_statuses(sessionmaker, p9000000001="done")
    assert await position(client) == "READY"  # one lead still pending
    await set_statuses(sessionmaker, p9000000002="expired")
    assert await position(client) == "COMPLETED"
    await set_campaign_running(sessionmaker)
    assert await position(client) == "RUNNING"  # running wins


@pytest.mark.parametrize("open_status", ["pending", "leased", "retry", "held", "callback"])
async def test_position_ready_while_any_lead_is_open(client, sessionmaker, open_status):
    await add_leads(client, "9000000001", "9000000002")
    await set_statuses(sessionmaker, p9000000001="deleted", p9000000002=open_status)
    assert await position(client) == "READY"


async def test_position_counts_deleted_leads_as_finished(client, sessionmaker):
    await add_leads(client, "9000000001")
    await set_statuses(sessionmaker, p9000000001="deleted")
    assert await position(client) == "COMPLETED"


async def test_position_counts_a_pending_lead_past_its_expiry_as_finished(client, sessionmaker):
    await add_leads(client, "9000000001")
    past = datetime.now(UTC) - timedelta(minutes=1)
    async with session_scope(sessionmaker) as session:
        await session.execute(update(Lead).values(expires_at=past))
    assert await position(client) == "COMPLETED"


# --- setCampaignStatus --------------------------------------------------------------


def set_body(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "userName": "acme",
        "campaignName": "Sales",
        "action": "Start",
        "process": True,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


async def test_start_and_stop_with_the_key_header(client, sessionmaker):
    assert await set_answer(client, set_body(), headers=KEY_HEADER) == STARTED
    assert await campaign_running(sessionmaker)
    assert await set_answer(client, set_body(), headers=KEY_HEADER) == STARTED  # already
    assert await set_answer(client, set_body(action="Stop"), headers=KEY_HEADER) == STOPPED
    assert not await campaign_running(sessionmaker)
    assert await set_answer(client, set_body(action="Stop"), headers=KEY_HEADER) == STOPPED


async def test_start_with_lowercase_keys_key_in_body_and_process_as_a_string(client, sessionmaker):
    body = {
        "username": "acme",
        "apikey": KEY,
        "campaignname": "Calls",
        "ACTION": " start ",
        "process": "TRUE",
    }
    expected = {"status": "SUCCESS", "message": "SUCCESSFULLY UPDATED, Predictive was started"}
    assert await set_answer(client, body) == expected
    assert await running_campaigns(sessionmaker) == {"Calls"}


async def test_start_from_the_query_string(client, sessionmaker):
    params = {"userName": "acme", "api_key": KEY, "campaignName": "Sales", "action": "START"}
    params["process"] = "true"
    response = await client.put(SET_URL, params=params)
    assert response.status_code == 200 and response.json() == STARTED
    assert await campaign_running(sessionmaker)


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({}, set_body(), KEY_MISSING),
        (KEY_HEADER, set_body(userName=" "), USER_MISSING),
        ({"apiKey": "wrong"}, set_body(), INVALID_USER),
        ({"apiKey": TOK_KEY}, set_body(userName="tok"), INVALID_ACTION),
        ({"apiKey": "off-secret-key"}, set_body(userName="off"), INVALID_ACTION),
        (KEY_HEADER, set_body(campaignName=" "), MANDATORY),
        (KEY_HEADER, set_body(campaignName=...), MANDATORY),
        (KEY_HEADER, set_body(action="Pause"), MANDATORY),
        (KEY_HEADER, set_body(action=...), MANDATORY),
        (KEY_HEADER, set_body(action=True), MANDATORY),
        (KEY_HEADER, set_body(process=False), MANDATORY),
        (KEY_HEADER, set_body(process="yes"), MANDATORY),
        (KEY_HEADER, set_body(process=...), MANDATORY),
        (KEY_HEADER, set_body(campaignName="Nope", action="pause"), MANDATORY),
        (KEY_HEADER, set_body(campaignName="Nope"), NO_RECORD),
        (KEY_HEADER, set_body(campaignName="Inbound"), NOT_OUTBOUND),
    ],
)
async def test_set_status_checks_in_order_and_nothing_changes(
    client, sessionmaker, headers, body, expected
):
    assert await set_answer(client, body, headers=headers) == expected
    assert await running_campaigns(sessionmaker) == set()


async def test_set_status_not_a_json_object_is_400(client, sessionmaker):
    response = await client.put(SET_URL, content=b"[]", headers=KEY_HEADER)
    assert response.status_code == 400 and response.json() == NOT_JSON
    assert await running_campaigns(sessionmaker) == set()


# --- bearer tokens ----------------------------------------------------------------------


async def test_bearer_status_and_start_with_the_ignored_api_key_header(client, sessionmaker):
    bearer = await token(client)
    headers = {"Authorization": f"Bearer {bearer}", "apiKey": "ignored-anything"}
    tok_sales = await campaign_id(sessionmaker, "Sales", "tok")
    body = {"userName": "tok", "campaignName": "Sales"}
    answer = await status_answer(client, headers=headers, body=body)
    assert answer == status_of(tok_sales, "READY", user="tok")
    assert await set_answer(client, set_body(userName="tok"), headers=headers) == STARTED
    answer = await status_answer(client, headers=headers, body=body)
    assert answer == status_of(tok_sales, "RUNNING", user="tok")
    assert not await campaign_running(sessionmaker)  # acme's Sales untouched


async def test_bearer_checks_on_status(client):
    bearer = await token(client)
    body = {"userName": "tok", "campaignName": "Sales"}

    async def with_auth(value: str, body: dict[str, Any] = body) -> Any:
        return await status_answer(client, headers={"Authorization": value}, body=body)

    assert await with_auth("Bearer ") == TOKEN_MISSING  # bearer check 1
    assert await with_auth("bearer not-a-jwt") == INVALID_TOKEN  # bearer check 2
    assert await with_auth(f"BEARER {bearer}", {"userName": "tok"}) == MANDATORY  # check 2
    assert await with_auth(f"Bearer {bearer}", {**body, "userName": "acme"}) == NO_RECORD  # 3
    assert await with_auth(f"Bearer {bearer}", {**body, "campaignName": "Calls"}) == NO_RECORD
    newer = await token(client)
    assert await with_auth(f"Bearer {bearer}") == INVALID_TOKEN  # superseded
    assert (await with_auth(f"Bearer {newer}"))["status"] == "success"


async def test_a_token_account_sending_its_key_to_set_status_is_refused(client, sessionmaker):
    answer = await set_answer(client, set_body(userName="tok"), headers={"apiKey": TOK_KEY})
    assert answer == INVALID_ACTION
    assert await running_campaigns(sessionmaker) == set()


async def test_bearer_set_status_username_must_be_the_tokens(client, sessionmaker):
    headers = {"Authorization": f"Bearer {await token(client)}"}
    assert await set_answer(client, set_body(userName="acme"), headers=headers) == INVALID_USER
    assert await set_answer(client, set_body(userName=" "), headers=headers) == USER_MISSING
    assert await running_campaigns(sessionmaker) == set()


# --- rate limits ------------------------------------------------------------------------


async def test_each_endpoint_has_its_own_per_minute_budget(backend: Backend):
    async with running_app(backend.settings()) as app:
        sessions = app.services.sessionmaker
        await make_account(sessions, "tiny", "tiny-secret-key", rate_limit=2)
        await make_campaign(sessions, "Sales", username="tiny")
        headers = {"apiKey": "tiny-secret-key"}
        body = {"userName": "tiny", "campaignName": "Sales"}
        async with client_for(app) as client:
            statuses = [await get_status(client, headers=headers, body=body) for _ in range(3)]
            sets = [
                await client.put(SET_URL, json=set_body(userName="tiny"), headers=headers)
                for _ in range(3)
            ]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert [r.status_code for r in sets] == [200, 200, 429]
    for refused in (statuses[2], sets[2]):
        retry_after = int(refused.headers["Retry-After"])
        assert 1 <= retry_after <= 60
        assert refused.json() == {
            "status": "false",
            "message": "Too many requests for this account or address; retry after"
            f" {retry_after} seconds.",
            "data": None,
        }


async def test_failed_status_authentications_count_against_the_address(backend: Backend):
    async with running_app(backend.settings(ip_rate_limit=2)) as app:
        body = {"userName": "acme", "campaignName": "Sales"}
        async with client_for(app) as client:
            answers = [
                await get_status(client, headers={"apiKey": "wrong"}, body=body) for _ in range(3)
            ]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert answers[0].json() == NO_RECORD


async def test_a_hung_redis_does_not_break_status_or_start(backend: Backend, redis_peer):
    settings = backend.settings(redis_url=redis_peer.url, redis_timeout_ms=200)
    async with running_app(settings) as app, client_for(app) as client:
        started = await client.put(SET_URL, json=set_body(), headers=KEY_HEADER)
        status = await get_status(
            client, headers=KEY_HEADER, body={"userName": "acme", "campaignName": "Sales"}
        )
    assert started.status_code == 200 and started.json() == STARTED
    assert status.status_code == 200 and status.json()["message"][0]["Position"] == "RUNNING"


# --- a database lost in the middle of a change -----------------------------------------------


async def test_a_connection_lost_while_starting_answers_503_and_nothing_changes(
    client, sessionmaker, backend: Backend, monkeypatch
):
    real = campaign_status.set_running

    async def then_lose_the_connection(session, campaign, running):  # type: ignore[no-untyped-def]
        await real(session, campaign, running)
        if backend.name == "postgres":
            await session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        raise ConnectionResetError(104, "Connection reset by peer")

    monkeypatch.setattr(campaign_status, "set_running", then_lose_the_connection)
    response = await client.put(SET_URL, json=set_body(), headers=KEY_HEADER)
    assert response.status_code == 503 and response.json() == DOWN
    monkeypatch.undo()
    assert not await campaign_running(sessionmaker)
    assert await set_answer(client, set_body(), headers=KEY_HEADER) == STARTED  # recovers


async def test_the_openapi_document_describes_both_operations(client):
    document = (await client.get("/openapi.json")).json()
    status = document["paths"]["/ca_apis/campaignStatus"]["get"]
    setting = document["paths"]["/ca_apis/setCampaignStatus"]["put"]
    assert [p["name"] for p in status["parameters"]] == [
        "apiKey",
        "Authorization",
        "userName",
        "campaignName",
    ]
    assert {"200", "400", "413", "429", "503"} <= set(status["responses"])
    examples = status["responses"]["200"]["content"]["application/json"]["examples"]
    assert examples["unknown"]["value"] == NO_RECORD
    examples = setting["responses"]["200"]["content"]["application/json"]["examples"]
    assert examples["started"]["value"] == STARTED
    assert set(setting["requestBody"]["content"]["application/json"]["schema"]["properties"]) == {
        "userName",
        "campaignName",
        "action",
        "process",
    }
