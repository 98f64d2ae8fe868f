"""deleteCampaignData and DeleteBulkData as clients call them: every check row in order,
with the exact bodies, on both backends; a refusal deletes nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import time_machine
from sqlalchemy import update

from dialbase.accounts.models import Account
from dialbase.accounts.service import bump_revision
from dialbase.campaigns.service import lead_count, lead_counts, list_campaigns
from dialbase.db import session_scope
from tests.conftest import Backend
from tests.factories import all_leads, make_account, make_campaign

ADD = "/ca_apis/AddCampaignData"
ONE = "/ca_apis/deleteCampaignData"
BULK = "/ca_apis/DeleteBulkData"
KEY = "acme-secret-key"
HEADER = {"apiKey": KEY}

# Authentication (contract §1), then deleteCampaignData's checks (§2) and DeleteBulkData's
# (§3), each answered with HTTP 200 and exactly this body.
KEY_MISSING = {"status": "false", "message": "Api Key Should Not be Null or Empty.", "data": None}
USER_MISSING = {"status": "false", "message": "Username Should Not be Null or Empty.", "data": None}
INVALID_USER = {"status": "false", "message": "Invalid User Details", "data": None}
INVALID_ACTION = {"status": "false", "message": "Invalid action.", "data": None}
INVALID_TOKEN = {"status": "false", "message": "Invalid Token", "data": None}
SEVERAL = {"status": "false", "message": "Invalid Json Pass Valid Json", "data": None}
CAMPAIGN_MISSING = {"status": "Error", "message": "Campaign should not be null are empty"}
CAMPAIGN_INVALID = {"status": "Error", "message": "Passed campaign are invalid"}
PHONE_MISSING = {"status": "Error", "message": "PhoneNumber should not be null are empty"}
NO_RECORD = {"status": "Error", "message": "No Record Found"}
DELETED = {"status": "Success", "message": "Deleted Successfully"}
PHONES_MISSING = {"status": "Error", "message": "PhoneNumbers should not be null are empty"}
TOO_MANY = {
    "status": "Error",
    "message": "A maximum of 100 phone numbers or 100 campaign names can be processed per request",
}
MAX_LIMIT = {"status": "Error", "message": "Max limit exceeded"}
STORED = {"status": "Success", "message": "SuccessFully Updated Progressive Campaign"}
DUPLICATE = {"status": "SUCCESS", "message": "Number Already Exist"}


def bulk_deleted(count: int) -> dict[str, Any]:
    return {"status": "Success", "message": "Deleted Successfully", "deleted": count}


@pytest.fixture(autouse=True)
def mid_minute() -> Iterator[None]:
    """Each test starts 5 s into a clock minute: the in-process counters of DeleteBulkData
    (2 a minute) are exact within one."""
    now = time.time()
    with time_machine.travel(now - now % 60 + 5):
        yield


@pytest.fixture
async def acme(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    """acme (default country IN) with campaigns Sales and Renewals; "other" with Sales."""
    await make_account(sessionmaker, default_country="IN")
    await make_campaign(sessionmaker)
    await make_campaign(sessionmaker, "Renewals")
    await make_account(sessionmaker, "other", "other-secret-key")
    await make_campaign(sessionmaker, "Sales", username="other")


async def add(client: httpx.AsyncClient, phone: Any, campaign: str = "Sales", **fields: Any):  # type: ignore[no-untyped-def]
    body = {"userName": "acme", "campaignName": campaign, "phoneNumber": phone, **fields}
    response = await client.post(ADD, json=body, headers=HEADER)
    assert response.status_code == 200, response.text
    return response.json()


async def delete(
    client: httpx.AsyncClient,
    url: str,
    body: Any,
    headers: dict[str, str] | None = HEADER,
    status: int = 200,
) -> dict[str, Any]:
    """DELETE with a JSON body, as the CRMs send it; the answer's JSON."""
    response = await client.request(
        "DELETE",
        url,
        content=_json(body),
        headers={"content-type": "application/json", **(headers or {})},
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return dict(response.json())


def _json(body: Any) -> bytes:
    return body if isinstance(body, bytes) else orjson.dumps(body)


def one(**fields: Any) -> dict[str, Any]:
    """A deleteCampaignData body for acme's Sales (None drops a key)."""
    body = {"userName": "acme", "campaignName": "Sales", "phoneNumber": "9876543210", **fields}
    return {k: v for k, v in body.items() if v is not None}


def bulk(**fields: Any) -> dict[str, Any]:
    body = {
        "userName": "acme",
        "phoneNumber": ["9876543210"],
        "campaignName": ["Sales"],
        **fields,
    }
    return {k: v for k, v in body.items() if v is not None}


async def live(sessions) -> list[tuple[str, str, str | None]]:  # type: ignore[no-untyped-def]
    """(campaign id, number as sent, name) of every lead not deleted, in order stored."""
    return [
        (str(lead.campaign_id), lead.phone_number, lead.name)
        for lead in await all_leads(sessions)
        if lead.status != "deleted"
    ]


# deleteCampaignData -------------------------------------------------------------------


@pytest.mark.usefixtures("acme")
async def test_delete_one_deletes_every_lead_of_the_number_as_stored(client, sessionmaker):
    """The number is compared as AddCampaignData stored it: +91..., 0... and the bare
    number are one number for an IN account; other numbers and campaigns are untouched."""
    assert await add(client, "+919876543210") == STORED
    assert await add(client, "09876543210") == STORED
    assert await add(client, "9876543211") == STORED
    assert await add(client, "9876543210", campaign="Renewals") == STORED
    assert await delete(client, ONE, one(phoneNumber="9876543210")) == DELETED
    leads = await all_leads(sessionmaker)
    assert [(lead.phone_number, lead.status) for lead in leads] == [
        ("+919876543210", "deleted"),
        ("09876543210", "deleted"),
        ("9876543211", "pending"),
        ("9876543210", "pending"),
    ]
    assert all(lead.deleted_at is not None for lead in leads[:2])
    assert leads[2].deleted_at is None


@pytest.mark.usefixtures("acme")
@pytest.mark.parametrize(
    "body, headers",
    [
        ({"userName": "acme", "campaignName": "Sales", "phoneNumber": 9876543210}, HEADER),
        (
            {
                "userName": "acme",
                "apiKey": KEY,
                "campaignName": "Sales",
                "phoneNumber": "+919876543210",
            },
            None,
        ),
        (
            {
                "username": "acme",
                "api_key": KEY,
                "campaignname": "Sales",
                "phonenumber": "9876543210",
            },
            None,
        ),
        (
            {"USERNAME": "acme", "CampaignName": " Sales ", "PHONENUMBER": " 9876543210 "},
            {"APIKEY": KEY},
        ),
    ],
    ids=["integer-number", "key-in-body", "lowercase-keys", "any-case-and-spaces"],
)
async def test_delete_one_as_clients_send_it(client, sessionmaker, body, headers):
    assert await add(client, "9876543210") == STORED
    assert await delete(client, ONE, body, headers=headers) == DELETED
    assert await live(sessionmaker) == []


@pytest.mark.usefixtures("acme")
async def test_delete_one_with_a_name_deletes_only_that_name_any_case(client, sessionmaker):
    assert await add(client, "9876543210", name="Asha Rao") == STORED
    assert await add(client, "9876543210", name="Ravi") == STORED
    assert await delete(client, ONE, one(name="Nobody")) == NO_RECORD
    assert await delete(client, ONE, one(name="ASHA rao")) == DELETED
    assert [lead[2] for lead in await live(sessionmaker)] == ["Ravi"]
    # The number still has a live lead: the duplicate check still finds it.
    assert await add(client, "9876543210", checkDuplicate=True) == DUPLICATE


@pytest.mark.usefixtures("acme")
async def test_delete_one_with_a_name_that_is_not_text_deletes_nothing(client, sessionmaker):
    """*Ours*: a name that no lead can have (an array, an object) matches no lead."""
    assert await add(client, "9876543210", name="Asha") == STORED
    assert await delete(client, ONE, one(name=["Asha"])) == NO_RECORD
    assert len(await live(sessionmaker)) == 1


@pytest.mark.usefixtures("acme")
@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"phoneNumber": ["9876543210", "9876543211"]}, SEVERAL),  # check 1
        ({"phoneNumber": {"number": "9876543210"}}, SEVERAL),
        ({"phoneNumber": [], "campaignName": ""}, SEVERAL),  # 1 before 2
        ({"campaignName": ""}, CAMPAIGN_MISSING),  # check 2
        ({"campaignName": "   "}, CAMPAIGN_MISSING),
        ({"campaignName": None}, CAMPAIGN_MISSING),
        ({"campaignName": "Nope"}, CAMPAIGN_INVALID),  # check 3
        ({"campaignName": "sales"}, CAMPAIGN_INVALID),  # names match exactly
        ({"campaignName": "Nope", "phoneNumber": ""}, CAMPAIGN_INVALID),  # 3 before 4
        ({"phoneNumber": ""}, PHONE_MISSING),  # check 4
        ({"phoneNumber": "  "}, PHONE_MISSING),
        ({"phoneNumber": None}, PHONE_MISSING),
        ({"phoneNumber": "9000000000"}, NO_RECORD),  # check 5
        ({"phoneNumber": "not a number"}, NO_RECORD),
        ({"phoneNumber": "98765\x0043210"}, NO_RECORD),  # hostile: never a 500
        ({"phoneNumber": "9" * 5000}, NO_RECORD),
        ({"campaignName": "Sa\x00les"}, CAMPAIGN_INVALID),
        ({"name": "As\x00ha"}, NO_RECORD),
    ],
)
async def test_delete_one_checks_in_order(client, sessionmaker, fields, expected):
    assert await add(client, "9876543210") == STORED
    assert await delete(client, ONE, one(**fields)) == expected
    assert len(await live(sessionmaker)) == 1


@pytest.mark.usefixtures("acme")
async def test_another_accounts_campaign_is_invalid_and_its_leads_stay(client, sessionmaker):
    response = await client.post(
        ADD,
        json={"userName": "other", "campaignName": "Sales", "phoneNumber": "9876543210"},
        headers={"apiKey": "other-secret-key"},
    )
    assert response.json() == STORED
    assert await delete(client, ONE, one()) == NO_RECORD  # acme's Sales has no such lead
    body = one(userName="other")
    assert await delete(client, ONE, body, headers={"apiKey": "other-secret-key"}) == DELETED


@pytest.mark.usefixtures("acme")
async def test_a_campaigns_lead_count_leaves_deleted_leads_out(client, sessionmaker):
    assert await add(client, "9876543210") == STORED
    assert await add(client, "9876543211") == STORED
    assert await add(client, "9876543212", campaign="Renewals") == STORED
    assert await delete(client, ONE, one(phoneNumber="9876543211")) == DELETED
    async with session_scope(sessionmaker, read_only=True) as session:
        campaigns = {c.name: c for c in await list_campaigns(session, "acme")}
        assert await lead_count(session, campaigns["Sales"].id) == 1
        counts = await lead_counts(session, [c.id for c in campaigns.values()])
    assert counts == {campaigns["Sales"].id: 1, campaigns["Renewals"].id: 1}


@pytest.mark.usefixtures("acme")
async def test_a_deleted_lead_is_no_record_the_second_time(client):
    assert await add(client, "9876543210") == STORED
    assert await delete(client, ONE, one()) == DELETED
    assert await delete(client, ONE, one()) == NO_RECORD


@pytest.mark.usefixtures("acme")
@pytest.mark.parametrize(
    "body, headers, expected",
    [
        (one(), None, KEY_MISSING),
        (one(userName="  "), HEADER, USER_MISSING),
        (one(userName=None), HEADER, USER_MISSING),
        (one(), {"apiKey": "wrong"}, INVALID_USER),
        (one(userName="other"), HEADER, INVALID_USER),
        (one(phoneNumber=["1", "2"]), None, KEY_MISSING),  # authentication comes first
    ],
)
async def test_delete_one_authenticates_first(client, sessionmaker, body, headers, expected):
    assert await add(client, "9876543210") == STORED
    assert await delete(client, ONE, body, headers=headers) == expected
    assert len(await live(sessionmaker)) == 1


@pytest.mark.usefixtures("acme")
@pytest.mark.parametrize("mode", ["NONE", "TOKEN_AUTH"])
async def test_an_account_not_on_basic_auth_is_invalid_action(client, sessionmaker, mode):
    assert await add(client, "9876543210") == STORED
    async with session_scope(sessionmaker) as session:
        await session.execute(
            update(Account).where(Account.username == "acme").values(auth_mode=mode)
        )
        await bump_revision(session)
    assert await delete(client, ONE, one()) == INVALID_ACTION
    assert await delete(client, BULK, bulk()) == INVALID_ACTION
    assert len(await live(sessionmaker)) == 1


async def _token(app, sessions, username: str) -> str:  # type: ignore[no-untyped-def]
    """A current bearer token of ``username`` (as Generate Token makes one)."""
    token, jti = await app.services.auth.tokens.issue(username)
    async with session_scope(sessions) as session:
        await session.execute(
            update(Account).where(Account.username == username).values(token_id=jti)
        )
        await bump_revision(session)
    return token


async def test_token_accounts_delete_with_a_bearer_token(app, client, sessionmaker):
    """A bearer token beside an apiKey header (the hosted product's own examples send
    both): the token decides; the key is ignored."""
    await make_account(sessionmaker, "tok", "tok-secret-key", auth_mode="TOKEN_AUTH")
    await make_campaign(sessionmaker, "Sales", username="tok")
    token = await _token(app, sessionmaker, "tok")
    headers = {"Authorization": f"Bearer {token}", "apiKey": "anything"}
    added = await client.post(
        ADD,
        json={"userName": "tok", "campaignName": "Sales", "phoneNumber": "9876543210"},
        headers=headers,
    )
    assert added.json() == STORED
    assert (
        await delete(client, ONE, one(userName="tok", phoneNumber=1), headers=headers) == NO_RECORD
    )
    assert await delete(client, ONE, one(userName="tok"), headers=headers) == DELETED
    assert await delete(client, ONE, one(userName="acme"), headers=headers) == INVALID_USER
    own_key = {"apiKey": "tok-secret-key"}  # its own key, no token
    assert await delete(client, ONE, one(userName="tok"), headers=own_key) == INVALID_ACTION
    bad = {"Authorization": "Bearer not-a-token", "apiKey": "tok-secret-key"}
    assert await delete(client, ONE, one(userName="tok"), headers=bad) == INVALID_TOKEN
    body = bulk(userName="tok", campaignName=["Sales"])
    assert await delete(client, BULK, body, headers=headers) == bulk_deleted(0)
    assert await delete(client, BULK, body, headers=bad) == INVALID_TOKEN


@pytest.mark.usefixtures("acme")
async def test_not_a_json_object_is_400_and_oversized_is_413(client, settings):
    expected = {
        "status": "false",
        "message": "The request body must be a JSON object.",
        "data": None,
    }
    for url in (ONE, BULK):
        assert await delete(client, url, b"{not json", status=400) == expected
        assert await delete(client, url, ["a list"], status=400) == expected
        assert await delete(client, url, b"", status=400) == expected
        limit = settings.max_body_bytes
        big = {"userName": "acme", "pad": "x" * (limit + 10)}
        too_large = {
            "status": "false",
            "message": f"The request body is larger than {limit} bytes.",
            "data": None,
        }
        assert await delete(client, url, big, status=413) == too_large


async def test_delete_one_is_rate_limited_apart_from_adding(backend: Backend, sessionmaker, client):
    """The account's per-minute limit, counted apart from AddCampaignData's: 429 with
    Retry-After in the family's shape."""
    await make_account(sessionmaker, rate_limit=2)
    await make_campaign(sessionmaker)
    for _ in range(2):
        assert await add(client, "9876543210") == STORED
    assert await delete(client, ONE, one()) == DELETED
    assert await delete(client, ONE, one()) == NO_RECORD
    response = await client.request("DELETE", ONE, json=one(), headers=HEADER)
    assert response.status_code == 429
    assert response.json()["status"] == "false" and response.json()["data"] is None
    assert 1 <= int(response.headers["Retry-After"]) <= 60


# DeleteBulkData -----------------------------------------------------------------------


@pytest.mark.usefixtures("acme")
async def test_bulk_deletes_each_number_from_each_listed_campaign(client, sessionmaker):
    for campaign in ("Sales", "Renewals"):
        assert await add(client, "+919876543210", campaign=campaign) == STORED
        assert await add(client, "9123456789", campaign=campaign) == STORED
        assert await add(client, "9000000001", campaign=campaign) == STORED
    body = bulk(phoneNumber=["9876543210", 9123456789], campaignName=["Sales", "Renewals"])
    assert await delete(client, BULK, body) == bulk_deleted(4)
    assert [lead[1] for lead in await live(sessionmaker)] == ["9000000001", "9000000001"]


@pytest.mark.usefixtures("acme")
async def test_bulk_only_touches_listed_campaigns_and_counts_nothing_twice(client, sessionmaker):
    assert await add(client, "9876543210") == STORED
    assert await add(client, "9876543210", campaign="Renewals") == STORED
    body = bulk(
        phoneNumber=["9876543210", "+919876543210", "9999999999"], campaignName=["Sales", "Sales"]
    )
    assert await delete(client, BULK, body, headers={"APIKEY": KEY}) == bulk_deleted(1)
    assert [lead[1] for lead in await live(sessionmaker)] == ["9876543210"]


@pytest.mark.usefixtures("acme")
async def test_bulk_with_nothing_to_delete_answers_a_count_of_zero(client):
    assert await delete(client, BULK, bulk(apiKey=KEY), headers=None) == bulk_deleted(0)


@pytest.mark.usefixtures("acme")
@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"phoneNumber": None}, PHONES_MISSING),  # check 1
        ({"phoneNumber": ""}, PHONES_MISSING),
        ({"phoneNumber": "9876543210"}, PHONES_MISSING),
        ({"phoneNumber": []}, PHONES_MISSING),
        ({"phoneNumber": ["9876543210", " "]}, PHONES_MISSING),
        ({"phoneNumber": [None]}, PHONES_MISSING),
        ({"phoneNumber": [], "campaignName": []}, PHONES_MISSING),  # 1 before 2
        ({"campaignName": None}, CAMPAIGN_MISSING),  # check 2
        ({"campaignName": "Sales"}, CAMPAIGN_MISSING),
        ({"campaignName": []}, CAMPAIGN_MISSING),
        ({"phoneNumber": [str(9000000000 + n) for n in range(101)]}, TOO_MANY),  # check 3
        ({"campaignName": ["Sales"] * 101}, TOO_MANY),
        ({"campaignName": ["Nope"] * 101}, TOO_MANY),  # 3 before 4
        ({"campaignName": ["Sales", "Nope"]}, CAMPAIGN_INVALID),  # check 4
        ({"campaignName": ["Sales", " "]}, CAMPAIGN_INVALID),
        ({"campaignName": ["Sales", 7]}, CAMPAIGN_INVALID),
        ({"campaignName": ["Sales\x00"]}, CAMPAIGN_INVALID),
    ],
)
async def test_bulk_checks_in_order_and_delete_nothing(client, sessionmaker, fields, expected):
    assert await add(client, "9876543210") == STORED
    assert await delete(client, BULK, bulk(**fields)) == expected
    assert len(await live(sessionmaker)) == 1


@pytest.mark.usefixtures("acme")
async def test_bulk_numbers_no_lead_can_have_delete_nothing(client, sessionmaker):
    assert await add(client, "9876543210") == STORED
    body = bulk(phoneNumber=["98765\x0043210", "9" * 5000, "abc"])
    assert await delete(client, BULK, body) == bulk_deleted(0)
    assert len(await live(sessionmaker)) == 1


@pytest.mark.usefixtures("acme")
async def test_bulk_takes_100_numbers_and_100_campaigns(client):
    body = bulk(phoneNumber=[str(9000000000 + n) for n in range(100)], campaignName=["Sales"] * 100)
    assert await delete(client, BULK, body) == bulk_deleted(0)


@pytest.mark.usefixtures("acme")
async def test_bulk_authenticates_first(client):
    assert await delete(client, BULK, bulk(phoneNumber=[]), headers=None) == KEY_MISSING
    assert await delete(client, BULK, bulk(userName=""), headers=HEADER) == USER_MISSING
    assert await delete(client, BULK, bulk(), headers={"apiKey": "nope"}) == INVALID_USER


@pytest.mark.usefixtures("acme")
async def test_a_third_bulk_request_within_a_minute_is_max_limit(client, sessionmaker):
    """Every identified request counts, whatever its answer (here a refused check 1)."""
    assert await add(client, "9876543210") == STORED
    assert await delete(client, BULK, bulk(phoneNumber=[])) == PHONES_MISSING
    assert await delete(client, BULK, bulk(phoneNumber=["9000000000"])) == bulk_deleted(0)
    assert await delete(client, BULK, bulk()) == MAX_LIMIT
    assert len(await live(sessionmaker)) == 1
    # Checks 1 to 4 still come first; another account has its own count.
    assert await delete(client, BULK, bulk(phoneNumber=[])) == PHONES_MISSING
    other = bulk(userName="other")
    assert await delete(
        client, BULK, other, headers={"apiKey": "other-secret-key"}
    ) == bulk_deleted(0)
    # A failed authentication is not the account's.
    with time_machine.travel(time.time() + 61):
        assert await delete(client, BULK, bulk()) == bulk_deleted(1)
