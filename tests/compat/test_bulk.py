"""Add Campaign Bulk Data (V4): the request's checks 1 to 10 in order, with the exact bodies,
and what a queued request answers. A refused request stores nothing.

The other test_bulk_* modules reuse this module's helpers (``bulk_app``, ``bulk_body``...).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from dialbase.app import create_app
from dialbase.config import Settings
from dialbase.db import session_scope
from dialbase.imports.models import Import, ImportRow
from tests.compat.test_tokens import KEY, SECRET, new_token
from tests.conftest import Backend
from tests.factories import OMIT, make_account, make_campaign

URL = "/cloudAgentRestAPI/index.php/AddCampaignBulkDataV4/addBulkData/format/json"


def E(message: str) -> dict[str, str]:
    return {"status": "error", "message": message}


CHECK: dict[int, dict[str, str]] = {
    1: E("apiKey should not be empty"),
    2: E("userName should not be empty"),
    3: E("Invalid userName or apiKey"),
    4: E("Invalid action."),
    5: E("Invalid campaignName"),
    6: E("The selected campaign is not outbound"),
    7: E("Please provide valid data"),
    8: E("PhoneNumber column does not exist"),
    9: E("The maximum count of data to be added is 500 per request"),
    10: E("Invalid callBackUrl"),
}
LIMIT_EXHAUSTED = E("Request limit exhausted")
ROWS = {"map": ["PhoneNumber", "Name"], "data": [["9876543210", "Asha"]]}


def bulk_body(**fields: Any) -> dict[str, Any]:
    """A valid bulk request of "acme" to "Sales" (fields override; OMIT drops a key)."""
    base: dict[str, Any] = {
        "apiKey": "acme-secret-key",
        "userName": "acme",
        "campaignName": "Sales",
        "bulkData": ROWS,
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not OMIT}


@contextlib.asynccontextmanager
async def bulk_app(settings: Settings, *, runner: bool = False) -> AsyncIterator[Any]:
    """The application (its lifespan running), the bulk endpoint's router included if
    app.py does not include it yet. Without ``runner`` the process's import runner is
    stopped at once, so that queued imports stay as they were queued."""
    from dialbase.compat import bulk_routes

    application = create_app(settings, migrate=False)
    paths = {getattr(route, "path", None) for route in application.api.routes}
    if URL not in paths:
        application.api.include_router(bulk_routes.router)
    async with application.lifespan():
        process_runner = getattr(application.services, "imports", None)
        if not runner and process_runner is not None:
            await process_runner.close()
        yield application


async def post_bulk(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None, **fields: Any
) -> httpx.Response:
    return await client.post(URL, json=bulk_body(**fields), headers=headers)


async def bulk_answer(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None, **fields: Any
) -> dict[str, Any]:
    """The body of an answer that comes with HTTP 200 (every documented outcome but 429)."""
    response = await post_bulk(client, headers, **fields)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return dict(response.json())


def assert_queued(answer: dict[str, Any]) -> int:
    """The success body; its transaction id as a number."""
    assert set(answer) == {"transactionId", "status", "message"}, answer
    assert answer["status"] == "success" and answer["message"] == "queued successfully"
    assert isinstance(answer["transactionId"], str) and answer["transactionId"].isdigit()
    return int(answer["transactionId"])


async def imports_of(sessions: Any) -> list[Import]:
    async with session_scope(sessions) as session:
        return list(await session.scalars(select(Import).order_by(Import.id)))


async def staged_rows(sessions: Any, import_id: int) -> list[list[Any]]:
    async with session_scope(sessions) as session:
        rows = await session.scalars(
            select(ImportRow).where(ImportRow.import_id == import_id).order_by(ImportRow.idx)
        )
        return [list(row.data) for row in rows]


async def assert_refused(
    client: httpx.AsyncClient,
    sessions: Any,
    check: int,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> None:
    assert await bulk_answer(client, headers, **fields) == CHECK[check]
    assert await imports_of(sessions) == []


@pytest.fixture
def settings(backend: Backend) -> Settings:
    """A rate limit these tests never reach, and a known token secret."""
    return backend.settings(bulk_rate_limit=1000, token_secret=SECRET)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    async with bulk_app(settings) as application:
        yield application


@pytest.fixture(autouse=True)
async def accounts(sessionmaker: Any) -> None:
    """acme (BASIC_AUTH): outbound "Sales", inbound "Inbound"; tok (TOKEN_AUTH): "Sales";
    off (NONE): "Sales"; other (BASIC_AUTH): "Theirs"."""
    await make_account(sessionmaker)
    await make_campaign(sessionmaker)
    await make_campaign(sessionmaker, "Inbound", direction="inbound")
    await make_account(sessionmaker, "tok", KEY, auth_mode="TOKEN_AUTH")
    await make_campaign(sessionmaker, "Sales", username="tok")
    await make_account(sessionmaker, "off", "off-secret-key", auth_mode="NONE")
    await make_campaign(sessionmaker, "Sales", username="off")
    await make_account(sessionmaker, "other", "other-secret-key")
    await make_campaign(sessionmaker, "Theirs", username="other")


# Check 1 -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers, key",
    [
        (None, OMIT),
        (None, ""),
        (None, "   "),
        (None, None),
        ({"apiKey": ""}, OMIT),
        ({"apiKey": "  "}, ""),
    ],
)
async def test_check_1_a_blank_api_key_in_body_and_header(client, sessionmaker, headers, key):
    await assert_refused(client, sessionmaker, 1, headers, apiKey=key)


async def test_check_1_comes_before_every_other_check(client, sessionmaker):
    body = {"userName": "", "campaignName": "", "bulkData": "x", "callBackUrl": "ftp://x"}
    await assert_refused(client, sessionmaker, 1, apiKey=OMIT, **body)


# Check 2 -----------------------------------------------------------------------------


@pytest.mark.parametrize("username", [OMIT, "", "   ", None])
async def test_check_2_a_blank_user_name(client, sessionmaker, username):
    await assert_refused(client, sessionmaker, 2, userName=username, campaignName="")


# Check 3 -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"apiKey": "wrong-key"},
        {"userName": "nobody"},
        {"userName": "ACME"},  # user names are exact
        {"userName": "other"},  # acme's key is not other's
        {"apiKey": 12345},
        {"apiKey": ["acme-secret-key"]},
    ],
)
async def test_check_3_no_account_with_that_user_name_and_key(client, sessionmaker, fields):
    await assert_refused(client, sessionmaker, 3, campaignName="", **fields)


async def test_check_3_a_wrong_header_key_is_not_saved_by_a_right_body_key(client, sessionmaker):
    headers = {"apiKey": "wrong-key"}
    await assert_refused(client, sessionmaker, 3, headers, apiKey="acme-secret-key")


# Check 4 -----------------------------------------------------------------------------


@pytest.mark.parametrize("username, key", [("tok", KEY), ("off", "off-secret-key")])
async def test_check_4_a_key_for_an_account_not_in_basic_auth_mode(
    client, sessionmaker, username, key
):
    await assert_refused(
        client, sessionmaker, 4, userName=username, apiKey=key, campaignName="", bulkData=OMIT
    )


# Check 5 -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [OMIT, "", "  ", None, "Nope", "sales", "Theirs", 42, ["Sales"]])
async def test_check_5_a_blank_or_unknown_campaign(client, sessionmaker, name):
    await assert_refused(client, sessionmaker, 5, campaignName=name, bulkData=OMIT)


async def test_the_campaign_name_is_trimmed(client, sessionmaker):
    assert_queued(await bulk_answer(client, campaignName="  Sales "))


# Check 6 -----------------------------------------------------------------------------


async def test_check_6_an_inbound_campaign(client, sessionmaker):
    await assert_refused(client, sessionmaker, 6, campaignName="Inbound", bulkData=OMIT)


# Check 7 -----------------------------------------------------------------------------

INVALID_DATA = [
    OMIT,
    None,
    "",
    "PhoneNumber\n9876543210",
    [["9876543210"]],
    {},
    {"map": ["PhoneNumber"]},
    {"data": [["9876543210"]]},
    {"map": [], "data": [["9876543210"]]},
    {"map": "PhoneNumber", "data": [["9876543210"]]},
    {"map": ["PhoneNumber", 7], "data": [["9876543210"]]},
    {"map": ["PhoneNumber", None], "data": [["9876543210"]]},
    {"map": ["PhoneNumber", " "], "data": [["9876543210"]]},
    {"map": ["PhoneNumber"], "data": []},
    {"map": ["PhoneNumber"], "data": "9876543210"},
    {"map": ["PhoneNumber"], "data": ["9876543210"]},
    {"map": ["PhoneNumber"], "data": [{"PhoneNumber": "9876543210"}]},
    {"map": ["PhoneNumber"], "data": [["9876543210"], "9876543211"]},
    {"map": ["PhoneNumber"], "data": [["9876543210", "extra cell"]]},  # longer than map
    {"map": ["PhoneNumber", "Name"], "data": [["9876543210"], ["1", "2", "3"]]},
    {"map": ["PhoneNumber"], "data": [[{"n": "9876543210"}]]},  # a cell of another type
    {"map": ["PhoneNumber"], "data": [[["9876543210"]]]},
    {"map": ["PhoneNumber"], "data": [[True]]},
    {"map": ["PhoneNumber", "Name"], "data": [["9876543210", "A\x00B"]]},  # NUL
]


@pytest.mark.parametrize("data", INVALID_DATA, ids=range(len(INVALID_DATA)))
async def test_check_7_bulk_data_that_is_not_a_map_and_rows(client, sessionmaker, data):
    await assert_refused(client, sessionmaker, 7, bulkData=data, callBackUrl="ftp://x")


async def test_check_7_holds_for_a_long_row_past_the_500th(client, sessionmaker):
    rows = [[str(9000000000 + i)] for i in range(600)] + [["9876543210", "x"]]
    await assert_refused(client, sessionmaker, 7, bulkData={"map": ["PhoneNumber"], "data": rows})


# Check 8 -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "columns", [["Name"], ["Phone Number"], ["Phone", "Name"], [" PhoneNumber"], ["Mobile"]]
)
async def test_check_8_no_phone_number_column(client, sessionmaker, columns):
    rows = [["9876543210"]]
    data = {"map": columns, "data": rows}
    await assert_refused(client, sessionmaker, 8, bulkData=data, callBackUrl="ftp://x")


@pytest.mark.parametrize("column", ["PhoneNumber", "phonenumber", "PHONENUMBER", "phoneNumber"])
async def test_the_phone_number_column_matches_in_any_letter_case(client, sessionmaker, column):
    data = {"map": ["Name", column], "data": [["Asha", "9876543210"]]}
    assert_queued(await bulk_answer(client, bulkData=data))


# Check 9 -----------------------------------------------------------------------------


async def test_check_9_more_than_500_rows(client, sessionmaker):
    rows = [[str(9000000000 + i)] for i in range(501)]
    data = {"map": ["PhoneNumber"], "data": rows}
    await assert_refused(client, sessionmaker, 9, bulkData=data, callBackUrl="ftp://x")


async def test_500_rows_are_queued(client, sessionmaker):
    rows = [[str(9000000000 + i)] for i in range(500)]
    transaction = assert_queued(
        await bulk_answer(client, bulkData={"map": ["PhoneNumber"], "data": rows})
    )
    assert len(await staged_rows(sessionmaker, transaction)) == 500


# Check 10 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://8.8.8.8/hook",
        "8.8.8.8/hook",
        "not a url",
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.0.0.8/hook",
        "http://192.168.1.20/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://user:secret@8.8.8.8/hook",
        "http://no-such-host.invalid/hook",
        42,
        ["http://8.8.8.8/"],
        {"url": "http://8.8.8.8/"},
        True,
    ],
)
async def test_check_10_a_callback_url_that_is_not_public_http(client, sessionmaker, url):
    await assert_refused(client, sessionmaker, 10, callBackUrl=url)


@pytest.mark.parametrize("url", [OMIT, None, "", "   "])
async def test_a_blank_callback_url_is_no_callback(client, sessionmaker, url):
    transaction = assert_queued(await bulk_answer(client, callBackUrl=url))
    [stored] = await imports_of(sessionmaker)
    assert stored.id == transaction and stored.callback_url is None


@pytest.mark.parametrize("url", ["http://8.8.8.8/hook", " https://1.1.1.1:8443/cb?x=1 "])
async def test_a_public_callback_url_is_stored_trimmed(client, sessionmaker, url):
    assert_queued(await bulk_answer(client, callBackUrl=url))
    [stored] = await imports_of(sessionmaker)
    assert stored.callback_url == url.strip()


async def test_private_callback_urls_pass_when_the_operator_allows_them(backend, sessionmaker):
    settings = backend.settings(allow_private_callbacks=True, database_url=backend.database_url)
    async with bulk_app(settings) as other, _client(other) as client:
        assert_queued(await bulk_answer(client, callBackUrl="http://127.0.0.1:9/hook"))
        assert await bulk_answer(client, callBackUrl="ftp://127.0.0.1/") == CHECK[10]
        assert await bulk_answer(client, callBackUrl="http://no-such-host.invalid/") == CHECK[10]


def _client(application: Any) -> httpx.AsyncClient:
    from tests.conftest import client_for_app

    return client_for_app(application)


# The order of the checks --------------------------------------------------------------

# A body failing check n and every later check: n answers.
LATER_FAILING: dict[int, dict[str, Any]] = {
    5: {"campaignName": "Nope"},
    6: {"campaignName": "Inbound"},
    7: {"bulkData": {"map": ["Name"], "data": [["a", "b"]] * 501}},
    8: {"bulkData": {"map": ["Name"], "data": [["a"]] * 501}},
    9: {"bulkData": {"map": ["PhoneNumber"], "data": [["9876543210"]] * 501}},
    10: {},
}


@pytest.mark.parametrize("check", sorted(LATER_FAILING))
async def test_the_first_failing_check_answers(client, sessionmaker, check):
    body: dict[str, Any] = {"callBackUrl": "http://127.0.0.1/"}
    for later in sorted(LATER_FAILING, reverse=True):
        if later >= check:
            body.update(LATER_FAILING[later])
    await assert_refused(client, sessionmaker, check, **body)


# How clients send their requests ------------------------------------------------------


async def test_the_api_key_may_come_as_a_header(client, sessionmaker):
    headers = {"apiKey": "acme-secret-key"}
    assert_queued(await bulk_answer(client, headers, apiKey=OMIT))
    assert_queued(await bulk_answer(client, {"APIKEY": "acme-secret-key"}, apiKey="wrong"))


async def test_a_blank_header_key_leaves_the_body_key_to_count(client, sessionmaker):
    assert_queued(await bulk_answer(client, {"apiKey": " "}))


async def test_body_keys_match_in_any_letter_case(client, sessionmaker):
    body = {
        "apikey": "acme-secret-key",
        "USERNAME": "acme",
        "campaignname": "Sales",
        "BulkData": {"MAP": ["phonenumber"], "Data": [["9876543210"]]},
        "ACTION": "Start",
        "CheckDuplicate": "TRUE",
        "callbackurl": "http://8.8.8.8/x",
    }
    response = await client.post(URL, json=body)
    assert response.status_code == 200
    transaction = assert_queued(response.json())
    [stored] = await imports_of(sessionmaker)
    assert (stored.id, stored.columns) == (transaction, ["phonenumber"])
    assert (stored.start, stored.check_duplicate) == (True, True)
    assert stored.callback_url == "http://8.8.8.8/x"


async def test_api_key_may_be_sent_as_api_key(client, sessionmaker):
    assert_queued(await bulk_answer(client, apiKey=OMIT, api_key="acme-secret-key"))


async def test_integer_phone_numbers_and_short_rows_are_accepted(client, sessionmaker):
    data = {
        "map": ["PhoneNumber", "Name", "Priority", "City"],
        "data": [[9876543210], [9876543211, None, 3], ["9876543212", "", "", "Pune"], [98765.0]],
    }
    transaction = assert_queued(await bulk_answer(client, bulkData=data))
    assert await staged_rows(sessionmaker, transaction) == data["data"]


# Bearer tokens ------------------------------------------------------------------------


async def test_a_bearer_token_of_a_token_auth_account_queues(client, sessionmaker):
    token = await new_token(client)
    headers = {"Authorization": f"Bearer {token}", "apiKey": "ignored"}
    transaction = assert_queued(await bulk_answer(client, headers, userName="tok", apiKey=OMIT))
    [stored] = await imports_of(sessionmaker)
    assert stored.id == transaction


async def test_the_token_checks_answer_in_this_endpoints_shape(client, sessionmaker):
    token = await new_token(client)
    bearer = {"Authorization": f"Bearer {token}"}
    cases: list[tuple[dict[str, str], dict[str, Any], dict[str, str]]] = [
        ({"Authorization": "Bearer "}, {}, E("Token Should Not be Null or Empty.")),
        ({"Authorization": "Bearer not-a-token"}, {}, E("Invalid Token")),
        (bearer, {"userName": OMIT}, CHECK[2]),
        (bearer, {"userName": " "}, CHECK[2]),
        (bearer, {"userName": "acme"}, CHECK[3]),
        (bearer, {"campaignName": "Nope"}, CHECK[5]),
    ]
    for headers, fields, expected in cases:
        body = {"userName": "tok", "apiKey": OMIT, "campaignName": "Sales", **fields}
        assert await bulk_answer(client, headers, **body) == expected, (headers, fields)
    assert await imports_of(sessionmaker) == []


async def test_a_token_of_an_account_switched_to_basic_auth_is_invalid_action(client, sessionmaker):
    from dialbase.accounts.service import update_account

    token = await new_token(client)
    async with session_scope(sessionmaker) as session:
        await update_account(session, "tok", auth_mode="BASIC_AUTH")
    headers = {"Authorization": f"Bearer {token}"}
    assert await bulk_answer(client, headers, userName="tok", apiKey=OMIT) == CHECK[4]
    assert await imports_of(sessionmaker) == []


# Bodies that are not requests ---------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'"text"', b"{"])
async def test_a_body_that_is_not_a_json_object_is_http_400(client, sessionmaker, raw):
    response = await client.post(URL, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json() == E("The request body must be a JSON object.")
    assert await imports_of(sessionmaker) == []


async def test_a_nul_character_in_the_user_name_is_http_400(client, sessionmaker):
    response = await post_bulk(client, userName="ac\x00me")
    assert response.status_code == 400
    assert response.json() == E("The value of 'username' contains a NUL character (U+0000).")


async def test_other_methods_are_not_allowed(client):
    assert (await client.get(URL)).status_code == 405
    assert (await client.put(URL, json=bulk_body())).status_code == 405
