"""The ``Idempotency-Key`` header: the same key with the same request replays the first
answer and changes nothing, on AddCampaignData, the older add endpoint, the bulk endpoint's
path and ``/v1`` writes; another request with the key is refused (422, in each family's
shape); answers that are not final (5xx, 429) are not kept; keys are checked; concurrent
requests with one key store once; the store's own failures answer 503 and store nothing."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select, update

from dialbase import idempotency
from dialbase.app import create_app
from dialbase.compat.answers import Answer
from dialbase.config import Settings
from dialbase.db import session_scope, utcnow
from dialbase.errors import DatabaseUnavailable
from dialbase.idempotency_models import IdempotencyKey
from dialbase.imports.models import Import
from tests.compat.helpers import client_for, running_app
from tests.conftest import Backend, RedisPeer
from tests.dialer.helpers import add_leads, running_campaign
from tests.factories import all_leads, body, make_account, make_campaign
from tests.faults.lost import fails_at

ADD = "/ca_apis/AddCampaignData"
LEGACY = "/cloudAgentRestAPI/index.php/CloudAgent/CloudAgentAPI/addCamapaignData"
BULK = "/cloudAgentRestAPI/index.php/AddCampaignBulkDataV4/addBulkData/format/json"
AUTH = httpx.BasicAuth("acme", "acme-secret-key")
STORED = {"status": "Success", "message": "SuccessFully Updated Progressive Campaign"}
DUPLICATE = {"status": "SUCCESS", "message": "Number Already Exist"}
DOWN = {
    "status": "false",
    "message": "The database is unavailable; nothing was stored. Try again shortly.",
    "data": None,
}
MISMATCH_TEXT = (
    "This Idempotency-Key was already used with a different request (method, path, query"
    " string or body); use a new key for a new request."
)
BAD_KEY_TEXT = (
    "The Idempotency-Key header must be 1 to 255 printable ASCII characters"
    " (space to tilde), given once."
)
BUSY_TEXT = (
    "A request with this Idempotency-Key is still in progress; retry after a second to get"
    " its answer."
)
XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return backend.settings(import_dir=str(tmp_path / "imports"))


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


def problem(status: int, title: str, detail: str) -> dict[str, Any]:
    return {"type": "about:blank", "title": title, "status": status, "detail": detail}


async def rows(sessions: Any) -> list[IdempotencyKey]:
    async with session_scope(sessions) as session:
        return list(await session.scalars(select(IdempotencyKey)))


async def acme(sessions: Any) -> None:
    await make_account(sessions)
    await make_campaign(sessions)


def same_answer(first: httpx.Response, again: httpx.Response) -> None:
    assert again.status_code == first.status_code
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers


# AddCampaignData --------------------------------------------------------------------


async def test_add_campaign_data_replays_the_first_answer_and_stores_one_lead(client, sessionmaker):
    await acme(sessionmaker)
    first = await client.post(ADD, json=body(), headers=key("order-1"))
    assert (first.status_code, first.json()) == (200, STORED)
    again = await client.post(ADD, json=body(), headers=key("order-1"))
    same_answer(first, again)
    assert [lead.phone_number for lead in await all_leads(sessionmaker)] == ["9876543210"]
    # Without the key the same request is a new one.
    assert (await client.post(ADD, json=body())).json() == STORED
    assert len(await all_leads(sessionmaker)) == 2


async def test_add_campaign_data_refuses_the_key_with_another_request(client, sessionmaker):
    await acme(sessionmaker)
    await client.post(ADD, json=body(), headers=key("order-1"))
    other = await client.post(ADD, json=body(phoneNumber="9876543211"), headers=key("order-1"))
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/json"
    assert other.json() == {"status": "false", "message": MISMATCH_TEXT, "data": None}
    assert [lead.phone_number for lead in await all_leads(sessionmaker)] == ["9876543210"]


async def test_a_key_belongs_to_its_caller(client, sessionmaker):
    await acme(sessionmaker)
    await make_account(sessionmaker, "globex", "globex-secret-key")
    await make_campaign(sessionmaker, username="globex")
    acme_answer = await client.post(ADD, json=body(), headers=key("k"))
    globex = body(userName="globex", apiKey="globex-secret-key")
    globex_answer = await client.post(ADD, json=globex, headers=key("k"))
    assert acme_answer.json() == globex_answer.json() == STORED
    assert "idempotent-replayed" not in globex_answer.headers
    assert len(await all_leads(sessionmaker)) == 2
    # The key in the apiKey header: another caller again.
    header_key = {"apiKey": "acme-secret-key", **key("k")}
    no_key_in_body = body(apiKey=None)
    del no_key_in_body["apiKey"]
    third = await client.post(ADD, json=no_key_in_body, headers=header_key)
    assert third.json() == STORED and "idempotent-replayed" not in third.headers
    assert len(await all_leads(sessionmaker)) == 3


async def test_a_refusal_is_final_and_replayed(client, sessionmaker):
    await acme(sessionmaker)
    wrong = body(apiKey="not-the-key")
    first = await client.post(ADD, json=wrong, headers=key("k"))
    assert first.json() == {"status": "false", "message": "Invalid User Details", "data": None}
    same_answer(first, await client.post(ADD, json=wrong, headers=key("k")))


async def test_twenty_concurrent_requests_with_one_key_store_one_lead(client, sessionmaker):
    await acme(sessionmaker)
    answers = await asyncio.gather(
        *(client.post(ADD, json=body(), headers=key("burst")) for _ in range(20))
    )
    assert {(a.status_code, a.text) for a in answers} == {
        (200, '{"status":"Success","message":"SuccessFully Updated Progressive Campaign"}')
    }
    assert sum("idempotent-replayed" not in a.headers for a in answers) == 1
    assert len(await all_leads(sessionmaker)) == 1


async def test_without_the_header_nothing_is_kept(client, sessionmaker):
    await acme(sessionmaker)
    await client.post(ADD, json=body())
    await client.get("/v1/dnc", auth=AUTH, headers=key("reads are not covered"))
    assert await rows(sessionmaker) == []


# Answers that are not final ---------------------------------------------------------


async def test_a_5xx_is_not_kept_and_the_retry_runs(app, client, sessionmaker, monkeypatch):
    await acme(sessionmaker)
    service = app.services.add_campaign_data
    handle = service.handle
    calls = 0

    async def down_once(*args: Any) -> Answer:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise DatabaseUnavailable()
        return await handle(*args)

    monkeypatch.setattr(service, "handle", down_once)
    first = await client.post(ADD, json=body(), headers=key("k"))
    assert (first.status_code, first.json()) == (503, DOWN)
    assert await rows(sessionmaker) == []  # the claim was released
    retry = await client.post(ADD, json=body(), headers=key("k"))
    assert (retry.status_code, retry.json()) == (200, STORED)
    assert "idempotent-replayed" not in retry.headers
    assert len(await all_leads(sessionmaker)) == 1


async def test_a_429_is_not_kept(app, client, sessionmaker, monkeypatch):
    await acme(sessionmaker)
    service = app.services.add_campaign_data
    handle = service.handle
    limited = Answer({"status": "false", "message": "slow down", "data": None}, 429)
    answers = iter([limited])

    async def limited_once(*args: Any) -> Answer:
        return next(answers, None) or await handle(*args)

    monkeypatch.setattr(service, "handle", limited_once)
    assert (await client.post(ADD, json=body(), headers=key("k"))).status_code == 429
    retry = await client.post(ADD, json=body(), headers=key("k"))
    assert (retry.status_code, retry.json()) == (200, STORED)


# Key validation ---------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"x" * 256, b"caf\xc3\xa9", b"tab\there", b"\x7f"], ids=repr)
async def test_a_bad_key_is_refused_in_each_familys_shape(client, sessionmaker, raw):
    await acme(sessionmaker)
    headers = [(b"idempotency-key", raw), (b"content-type", b"application/json")]
    compat = await client.post(ADD, content=b'{"userName": "acme"}', headers=headers)
    assert compat.status_code == 400
    assert compat.json() == {"status": "false", "message": BAD_KEY_TEXT, "data": None}
    v1 = await client.put("/v1/dnc/+919876543210", auth=AUTH, headers=headers)
    assert v1.status_code == 400
    assert v1.headers["content-type"] == "application/problem+json"
    assert v1.json() == problem(400, "Bad Request", BAD_KEY_TEXT)
    legacy = await client.get(LEGACY, params={"api_key": "acme-secret-key"}, headers=headers)
    assert legacy.status_code == 400
    assert legacy.headers["content-type"] == "application/xml"
    assert legacy.text == (
        f"{XML_DECLARATION}<xml><status>false</status><message>{BAD_KEY_TEXT}</message>"
        "<data/></xml>\n"
    )
    assert await all_leads(sessionmaker) == []
    assert await rows(sessionmaker) == []


async def test_a_key_given_twice_is_refused(client, sessionmaker):
    await acme(sessionmaker)
    headers = [(b"idempotency-key", b"a"), (b"idempotency-key", b"b")]
    answer = await client.post(ADD, json=body(), headers=headers)
    assert (answer.status_code, answer.json()["message"]) == (400, BAD_KEY_TEXT)
    assert await all_leads(sessionmaker) == []


async def test_a_key_of_255_printable_characters_and_spaces_is_taken(client, sessionmaker):
    await acme(sessionmaker)
    long_key = ("a b~!" * 51)[:255]
    first = await client.post(ADD, json=body(), headers=key(long_key))
    assert first.json() == STORED
    same_answer(first, await client.post(ADD, json=body(), headers=key(long_key)))


async def test_a_body_past_the_largest_any_endpoint_takes_is_handed_on_unkeyed(
    client, sessionmaker, monkeypatch
):
    """Every endpoint refuses such a body for its size; here the limit is lowered so that
    the endpoint's own answer shows it got the whole body."""
    await acme(sessionmaker)
    monkeypatch.setattr(idempotency, "MAX_BODY_BYTES", 10)
    monkeypatch.setattr(idempotency, "CHUNK", 7)
    first = await client.post(ADD, json=body(), headers=key("k"))
    again = await client.post(ADD, json=body(), headers=key("k"))
    assert first.json() == again.json() == STORED
    assert "idempotent-replayed" not in again.headers
    assert await rows(sessionmaker) == []
    assert len(await all_leads(sessionmaker)) == 2
    # No length declared: found while reading, the part read is handed on with the rest.
    raw = orjson.dumps(body(phoneNumber="9876543211"))

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 8):
            yield raw[start : start + 8]

    streamed = await client.post(
        ADD, content=pieces(), headers={**key("k2"), "content-type": "application/json"}
    )
    assert streamed.json() == STORED
    assert await rows(sessionmaker) == []
    assert [lead.phone_number for lead in await all_leads(sessionmaker)][-1] == "9876543211"


async def test_credentials_in_the_query_string_scope_the_key(client, sessionmaker):
    await acme(sessionmaker)
    await make_account(sessionmaker, "globex", "globex-secret-key")
    await make_campaign(sessionmaker, username="globex")
    started = {"status": "SUCCESS", "message": "SUCCESSFULLY UPDATED, Progressive was started"}
    for user in ("acme", "globex"):
        params = {
            "userName": user,
            "apiKey": f"{user}-secret-key",
            "campaignName": "Sales",
            "action": "Start",
            "process": "true",
        }
        answer = await client.put("/ca_apis/setCampaignStatus", params=params, headers=key("go"))
        assert answer.json() == started
        assert "idempotent-replayed" not in answer.headers
    assert len(await rows(sessionmaker)) == 2


# The older add endpoint and the bulk endpoint ---------------------------------------


async def test_the_older_endpoint_replays_in_its_format(client, sessionmaker):
    await acme(sessionmaker)
    query = {"api_key": "acme-secret-key", "campaign_name": "Sales", "PhoneNumber": "9876543210"}
    first = await client.get(LEGACY, params=query, headers=key("old-1"))
    assert first.headers["content-type"] == "application/xml"
    assert first.text == (
        f"{XML_DECLARATION}<xml><status>SUCCESS</status>"
        "<message>Successfully Updated</message></xml>\n"
    )
    same_answer(first, await client.get(LEGACY, params=query, headers=key("old-1")))
    assert len(await all_leads(sessionmaker)) == 1

    other = await client.get(LEGACY, params={**query, "Name": "x"}, headers=key("old-1"))
    assert (other.status_code, other.headers["content-type"]) == (422, "application/xml")
    assert other.text == (
        f"{XML_DECLARATION}<xml><status>false</status><message>{MISMATCH_TEXT}</message>"
        "<data/></xml>\n"
    )
    as_json = await client.post(f"{LEGACY}.json", data={**query, "Name": "y"}, headers=key("old-1"))
    assert (as_json.status_code, as_json.headers["content-type"]) == (422, "application/json")
    assert as_json.json() == {"status": "false", "message": MISMATCH_TEXT, "data": None}
    assert len(await all_leads(sessionmaker)) == 1


async def test_the_older_endpoint_scopes_the_key_by_its_api_key(client, sessionmaker):
    await acme(sessionmaker)
    await make_account(sessionmaker, "globex", "globex-secret-key")
    await make_campaign(sessionmaker, username="globex")
    for api_key in ("acme-secret-key", "globex-secret-key"):
        query = {"api_key": api_key, "campaign_name": "Sales", "PhoneNumber": "9876543210"}
        answer = await client.get(LEGACY, params=query, headers=key("same"))
        assert "idempotent-replayed" not in answer.headers
    assert len(await all_leads(sessionmaker)) == 2


async def test_the_bulk_path_refuses_another_request_in_its_shape(client, sessionmaker):
    await acme(sessionmaker)
    request = {"userName": "acme", "apiKey": "wrong-key", "campaignName": "Sales"}
    first = await client.post(BULK, json=request, headers=key("bulk-1"))
    same_answer(first, await client.post(BULK, json=request, headers=key("bulk-1")))
    other = await client.post(BULK, json={**request, "x": 1}, headers=key("bulk-1"))
    assert (other.status_code, other.headers["content-type"]) == (422, "application/json")
    assert other.json() == {"status": "error", "message": MISMATCH_TEXT}


async def test_a_bulk_request_is_replayed_with_its_transaction_id(settings):
    from dialbase.compat import bulk_routes  # its router is not in app.py yet

    application = create_app(settings, migrate=False)
    if BULK not in {getattr(route, "path", None) for route in application.api.routes}:
        application.api.include_router(bulk_routes.router)
    request = {
        "userName": "acme",
        "apiKey": "acme-secret-key",
        "campaignName": "Sales",
        "bulkData": {"map": ["PhoneNumber"], "data": [["9876543210"], ["9876543211"]]},
    }
    async with application.lifespan(), client_for(application) as client:
        sessions = application.services.sessionmaker
        await acme(sessions)
        first = await client.post(BULK, json=request, headers=key("bulk-2"))
        queued = first.json()
        assert queued == {
            "transactionId": queued["transactionId"],
            "status": "success",
            "message": "queued successfully",
        }
        same_answer(first, await client.post(BULK, json=request, headers=key("bulk-2")))
        other = await client.post(BULK, json={**request, "action": "start"}, headers=key("bulk-2"))
        assert other.status_code == 422
        assert other.json() == {"status": "error", "message": MISMATCH_TEXT}
        async with session_scope(sessions) as session:
            assert await session.scalar(select(func.count()).select_from(Import)) == 1


# /v1 writes -------------------------------------------------------------------------


async def test_a_lease_is_replayed_not_taken_again(client, sessionmaker):
    await running_campaign(sessionmaker)
    await add_leads(sessionmaker, {}, {})
    url = "/v1/campaigns/Sales/leases"
    first = await client.post(url, json={"count": 1}, auth=AUTH, headers=key("lease-1"))
    assert first.status_code == 200, first.text
    assert len(first.json()["leases"]) == 1
    again = await client.post(url, json={"count": 1}, auth=AUTH, headers=key("lease-1"))
    same_answer(first, again)
    # The other lead is still in the queue: the replay leased nothing.
    fresh = await client.post(url, json={"count": 5}, auth=AUTH)
    assert len(fresh.json()["leases"]) == 1
    other = await client.post(url, json={"count": 2}, auth=AUTH, headers=key("lease-1"))
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json() == problem(422, "Unprocessable Entity", MISMATCH_TEXT)


async def test_deleting_leads_is_replayed(client, sessionmaker):
    await running_campaign(sessionmaker)
    await add_leads(sessionmaker, {"phone_number": "9876543210"})
    url = "/v1/campaigns/Sales/leads?phoneNumber=9876543210"
    first = await client.delete(url, auth=AUTH, headers=key("del-1"))
    assert (first.status_code, first.json()) == (
        200,
        {"campaign": "Sales", "phoneNumber": "9876543210", "deleted": 1},
    )
    same_answer(first, await client.delete(url, auth=AUTH, headers=key("del-1")))
    assert (await client.delete(url, auth=AUTH)).status_code == 404


async def test_a_dnc_put_replays_its_201(client, sessionmaker):
    await acme(sessionmaker)
    url = "/v1/dnc/+919876543210"
    first = await client.put(url, json={"note": "asked"}, auth=AUTH, headers=key("dnc-1"))
    assert first.status_code == 201
    again = await client.put(url, json={"note": "asked"}, auth=AUTH, headers=key("dnc-1"))
    same_answer(first, again)
    # Without the key a second put replaces the entry: 200.
    assert (await client.put(url, json={"note": "asked"}, auth=AUTH)).status_code == 200


async def test_another_callers_basic_auth_is_another_scope(client, sessionmaker):
    await acme(sessionmaker)
    await make_account(sessionmaker, "globex", "globex-secret-key")
    url = "/v1/dnc/+919876543210"
    acme_put = await client.put(url, auth=AUTH, headers=key("dnc"))
    globex = httpx.BasicAuth("globex", "globex-secret-key")
    globex_put = await client.put(url, auth=globex, headers=key("dnc"))
    assert acme_put.status_code == globex_put.status_code == 201
    assert "idempotent-replayed" not in globex_put.headers


async def test_a_file_upload_is_replayed_though_the_client_picks_a_new_boundary(
    client, sessionmaker, settings
):
    await acme(sessionmaker)
    url = "/v1/campaigns/Sales/imports"
    csv = b"PhoneNumber,Name\n9876543210,Asha\n"

    async def upload(content: bytes) -> httpx.Response:
        # httpx draws a new random boundary for each request it encodes.
        files = {"file": ("leads.csv", content, "text/csv")}
        return await client.post(url, auth=AUTH, files=files, headers=key("upload-1"))

    first = await upload(csv)
    assert first.status_code == 202, first.text
    again = await upload(csv)
    same_answer(first, again)
    assert again.headers["location"] == first.headers["location"]
    other = await upload(csv + b"9876543211,Ravi\n")
    assert other.status_code == 422
    assert other.json() == problem(422, "Unprocessable Entity", MISMATCH_TEXT)
    async with session_scope(sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(Import)) == 1


@pytest.mark.parametrize("chunk", [1, 3, 64 * 1024])
def test_the_fingerprint_leaves_out_the_multipart_boundary_whatever_the_chunks(monkeypatch, chunk):
    monkeypatch.setattr(idempotency, "CHUNK", chunk)

    def fingerprint(boundary: bytes, value: bytes) -> str:
        body = (
            b"--"
            + boundary
            + b'\r\nContent-Disposition: form-data; name="a"\r\n\r\n'
            + value
            + b"\r\n--"
            + boundary
            + b"--\r\n"
        )
        content_type = b"multipart/form-data; boundary=" + boundary
        scope = {
            "method": "POST",
            "path": "/v1/x",
            "query_string": b"",
            "headers": [(b"content-type", content_type)],
        }
        with tempfile.SpooledTemporaryFile() as spool:
            spool.write(body)
            request = idempotency.Request("v1", "k", spool, len(body))
            idempotency.hashes(scope, request)
        return request.fingerprint

    assert fingerprint(b"abc123", b"one") == fingerprint(b"zz-other-boundary-9", b"one")
    assert fingerprint(b"abc123", b"one") != fingerprint(b"abc123", b"two")


# Waiting, leases, pruning -----------------------------------------------------------


async def test_a_request_waits_for_the_claim_then_409(client, sessionmaker, monkeypatch):
    await acme(sessionmaker)
    monkeypatch.setattr(idempotency, "WAIT_SECONDS", 0.3)
    store_keep = idempotency.Store.keep

    async def never_kept(*args: Any) -> None:
        raise DatabaseUnavailable()

    # The first request's answer cannot be kept: its claim stays in progress (lease held).
    monkeypatch.setattr(idempotency.Store, "keep", never_kept)
    first = await client.post(ADD, json=body(checkDuplicate="true"), headers=key("k"))
    assert first.json() == STORED  # the answer is true: it is sent
    monkeypatch.setattr(idempotency.Store, "keep", store_keep)
    busy = await client.post(ADD, json=body(checkDuplicate="true"), headers=key("k"))
    assert (busy.status_code, busy.headers["retry-after"]) == (409, "1")
    assert busy.json() == {"status": "false", "message": BUSY_TEXT, "data": None}
    # The lease lapses (the claimant presumed dead): the retry runs again, and the
    # campaign's duplicate guard still holds.
    async with session_scope(sessionmaker) as session:
        await session.execute(
            update(IdempotencyKey).values(claimed_until=utcnow() - timedelta(seconds=1))
        )
    rerun = await client.post(ADD, json=body(checkDuplicate="true"), headers=key("k"))
    assert (rerun.status_code, rerun.json()) == (200, DUPLICATE)
    same_answer(rerun, await client.post(ADD, json=body(checkDuplicate="true"), headers=key("k")))
    assert len(await all_leads(sessionmaker)) == 1


async def test_a_waiting_request_replays_once_the_first_finishes(
    app, client, sessionmaker, monkeypatch
):
    await acme(sessionmaker)
    service = app.services.add_campaign_data
    handle = service.handle
    release = asyncio.Event()

    async def slow(*args: Any) -> Answer:
        await release.wait()
        return await handle(*args)

    monkeypatch.setattr(service, "handle", slow)
    first = asyncio.create_task(client.post(ADD, json=body(), headers=key("k")))
    await asyncio.sleep(0.2)
    second = asyncio.create_task(client.post(ADD, json=body(), headers=key("k")))
    await asyncio.sleep(0.2)
    assert not second.done()
    release.set()
    one, two = await first, await second
    assert one.json() == two.json() == STORED
    assert two.headers["idempotent-replayed"] == "true"
    assert len(await all_leads(sessionmaker)) == 1


async def test_rows_older_than_a_day_are_pruned_and_their_keys_free(app, client, sessionmaker):
    await acme(sessionmaker)
    await client.post(ADD, json=body(), headers=key("old"))
    await client.post(ADD, json=body(), headers=key("new"))
    async with session_scope(sessionmaker) as session:
        await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.idem_key == "old")
            .values(created_at=utcnow() - timedelta(hours=24, seconds=1))
        )
    # A day on, the key is free again, even for another request.
    reused = await client.post(ADD, json=body(phoneNumber="9876543211"), headers=key("old"))
    assert reused.json() == STORED and "idempotent-replayed" not in reused.headers
    async with session_scope(sessionmaker) as session:
        await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.idem_key == "old")
            .values(created_at=utcnow() - timedelta(hours=25))
        )
    assert await idempotency.Store(app.services.engine).prune() == 1
    assert [r.idem_key for r in await rows(sessionmaker)] == ["new"]


# Failures ---------------------------------------------------------------------------


async def test_a_lost_connection_when_claiming_answers_503_and_stores_nothing(
    app, client, sessionmaker, backend
):
    await acme(sessionmaker)
    with fails_at(app, backend, "INSERT INTO IDEMPOTENCY_KEYS"):
        down = await client.post(ADD, json=body(), headers=key("k"))
        v1 = await client.put("/v1/dnc/+919876543210", auth=AUTH, headers=key("k"))
    assert (down.status_code, down.json()) == (503, DOWN)
    assert v1.status_code == 503
    assert v1.json() == problem(
        503,
        "Service Unavailable",
        "The database is unavailable; nothing was stored. Try again shortly.",
    )
    assert await all_leads(sessionmaker) == []
    assert (await client.get("/v1/dnc/+919876543210", auth=AUTH)).status_code == 404
    assert await rows(sessionmaker) == []
    again = await client.post(ADD, json=body(), headers=key("k"))
    assert (again.status_code, again.json()) == (200, STORED)


async def test_a_lost_connection_when_keeping_sends_the_true_answer(
    app, client, sessionmaker, backend
):
    await acme(sessionmaker)
    with fails_at(app, backend, "UPDATE IDEMPOTENCY_KEYS"):
        answer = await client.post(ADD, json=body(), headers=key("k"))
    assert (answer.status_code, answer.json()) == (200, STORED)
    [row] = await rows(sessionmaker)
    assert row.status_code is None  # left in progress: its lease lapses
    assert len(await all_leads(sessionmaker)) == 1


async def test_a_hung_redis_does_not_break_keyed_requests(backend: Backend, redis_peer: RedisPeer):
    settings = backend.settings(redis_url=redis_peer.url, redis_timeout_ms=100)
    async with running_app(settings) as app, client_for(app) as client:
        await acme(app.services.sessionmaker)
        first = await client.post(ADD, json=body(), headers=key("k"))
        assert first.json() == STORED
        same_answer(first, await client.post(ADD, json=body(), headers=key("k")))
        assert len(await all_leads(app.services.sessionmaker)) == 1
        async with session_scope(app.services.sessionmaker) as session:
            assert await session.scalar(select(func.count()).select_from(IdempotencyKey)) == 1


async def test_generate_token_ignores_the_key_and_keeps_no_token(client, sessionmaker):
    """A bearer token is never kept for a replay: each request makes a new one."""
    await make_account(sessionmaker, "tok", "tok-secret-key", auth_mode="TOKEN_AUTH")
    body = {"userName": "tok", "apiKey": "tok-secret-key"}
    headers = {"Idempotency-Key": "token-once"}
    first = await client.post("/ca_apis/CAToken/generateToken", json=body, headers=headers)
    second = await client.post("/ca_apis/CAToken/generateToken", json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json()["token"] != second.json()["token"]
    assert "Idempotent-Replayed" not in second.headers
    async with sessionmaker() as session:
        kept = await session.scalar(select(func.count()).select_from(IdempotencyKey))
    assert kept == 0
