"""``/v1/dnc``: put, get, delete and list an account's do-not-call entries over HTTP."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta

import httpx
import pytest

from dialbase.db import utcnow
from tests.compat.helpers import answer, updated
from tests.dnc.helpers import (
    AUTH,
    acme,
    add_raw_entry,
    assert_problem,
    minutes_ago,
    set_country,
)
from tests.factories import all_leads, make_account

DND = {"status": "FAIL", "message": "PhoneNumber Added is a DND Number"}
NUMBER = "+919876543210"


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _utc_text(moment: datetime) -> str:
    """An instant as the API prints it (UTC, ``Z``)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")


async def put(client: httpx.AsyncClient, number: str, auth=AUTH, **body) -> httpx.Response:  # type: ignore[no-untyped-def]
    return await client.put(f"/v1/dnc/{number}", json=body or None, auth=auth)


async def test_a_put_lists_the_number_201_and_shows_the_entry(client, sessionmaker):
    await acme(sessionmaker)
    response = await client.put(f"/v1/dnc/{NUMBER}", auth=AUTH)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"number", "expiresAt", "note", "createdAt"}
    assert (body["number"], body["expiresAt"], body["note"]) == (NUMBER, None, None)
    created = datetime.fromisoformat(body["createdAt"])
    assert abs(created - utcnow()) < timedelta(minutes=1)
    assert (await client.get(f"/v1/dnc/{NUMBER}", auth=AUTH)).json() == body


async def test_a_second_put_replaces_expiry_and_note_and_answers_200(client, sessionmaker):
    await acme(sessionmaker)
    first = (await put(client, NUMBER, note="asked twice")).json()
    expires = (utcnow() + timedelta(days=30)).replace(microsecond=0)
    offset = expires.astimezone(datetime.fromisoformat("2026-01-01T00:00+05:30").tzinfo)
    second = await put(client, NUMBER, expiresAt=_iso(offset), note="until the case closes")
    assert second.status_code == 200, second.text
    assert second.json() == {
        "number": NUMBER,
        "expiresAt": _utc_text(expires),
        "note": "until the case closes",
        "createdAt": first["createdAt"],
    }
    third = await client.put(f"/v1/dnc/{NUMBER}", auth=AUTH)  # no body: no expiry, no note
    assert third.status_code == 200
    assert (third.json()["expiresAt"], third.json()["note"]) == (None, None)


@pytest.mark.parametrize("number", ["12", "98765abc10", "+12345678901234567", "++919876543210"])
async def test_a_put_of_something_that_is_not_a_phone_number_answers_422(
    client, sessionmaker, number
):
    await acme(sessionmaker)
    assert_problem(await put(client, number), 422, "is not a phone number", "3 to 16 digits")
    assert (await client.get("/v1/dnc", auth=AUTH)).json()["entries"] == []


async def test_a_put_refuses_a_past_or_offsetless_expiry_and_a_bad_note(client, sessionmaker):
    await acme(sessionmaker)
    past = _iso(utcnow() - timedelta(seconds=1))
    assert_problem(await put(client, NUMBER, expiresAt=past), 422, "must be in the future")
    naive = (utcnow() + timedelta(days=1)).replace(tzinfo=None).isoformat()
    assert_problem(await put(client, NUMBER, expiresAt=naive), 422, "expiresAt")
    far = "9999-12-31T23:00:00-05:00"
    assert_problem(await put(client, NUMBER, expiresAt=far), 422, "years 1 to 9999")
    assert_problem(await put(client, NUMBER, note="x" * 1001), 422, "note")
    assert_problem(await put(client, NUMBER, note="a\x00b"), 422, "NUL")
    assert_problem(await put(client, NUMBER, expiry=past), 422, "expiry", "not permitted")
    assert (await client.get("/v1/dnc", auth=AUTH)).json()["entries"] == []


async def test_a_note_of_1000_characters_is_kept(client, sessionmaker):
    await acme(sessionmaker)
    response = await put(client, NUMBER, note="é" * 1000)
    assert response.status_code == 201 and response.json()["note"] == "é" * 1000


async def test_get_and_delete_of_a_number_not_listed_answer_404(client, sessionmaker):
    await acme(sessionmaker)
    expected = {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": f"{NUMBER} is not on the do-not-call list",
    }
    for response in (
        await client.get(f"/v1/dnc/{NUMBER}", auth=AUTH),
        await client.delete(f"/v1/dnc/{NUMBER}", auth=AUTH),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json() == expected


async def test_delete_takes_the_number_off_the_list_204(client, sessionmaker):
    await acme(sessionmaker)
    await put(client, NUMBER)
    response = await client.delete(f"/v1/dnc/{NUMBER}", auth=AUTH)
    assert response.status_code == 204 and response.content == b""
    assert_problem(await client.get(f"/v1/dnc/{NUMBER}", auth=AUTH), 404)
    assert_problem(await client.delete(f"/v1/dnc/{NUMBER}", auth=AUTH), 404, "not on the")
    assert await answer(client, phoneNumber=NUMBER) == updated("Progressive")


async def test_three_spellings_are_one_entry_with_default_country_in(client, sessionmaker):
    await acme(sessionmaker, country="IN")
    assert (await put(client, "+919876543210")).status_code == 201
    assert (await put(client, "09876543210", note="local")).status_code == 200
    got = await client.get("/v1/dnc/9876543210", auth=AUTH)
    assert (got.status_code, got.json()["number"], got.json()["note"]) == (200, NUMBER, "local")
    listed = (await client.get("/v1/dnc", auth=AUTH)).json()
    assert [entry["number"] for entry in listed["entries"]] == [NUMBER]
    assert (await client.delete("/v1/dnc/09876543210", auth=AUTH)).status_code == 204
    assert_problem(await client.get("/v1/dnc/+919876543210", auth=AUTH), 404, NUMBER)


async def test_without_a_default_country_a_number_without_prefix_is_kept_as_sent(
    client, sessionmaker
):
    await acme(sessionmaker)
    response = await put(client, " 9876543210 ")  # trimmed, as AddCampaignData trims
    assert (response.status_code, response.json()["number"]) == (201, "9876543210")
    assert_problem(await client.get(f"/v1/dnc/{NUMBER}", auth=AUTH), 404)


async def test_a_listed_number_is_refused_by_add_campaign_data_with_the_dnd_body(
    client, sessionmaker
):
    await acme(sessionmaker, country="IN")
    await put(client, NUMBER)
    assert await answer(client, phoneNumber="09876543210") == DND
    assert await answer(client, phoneNumber=NUMBER, action="start") == DND
    assert await all_leads(sessionmaker) == []
    assert await answer(client, phoneNumber="9876543211") == updated("Progressive")


async def test_an_entry_expiring_later_still_suppresses(client, sessionmaker):
    await acme(sessionmaker)
    await put(client, NUMBER, expiresAt=_iso(utcnow() + timedelta(hours=1)))
    assert await answer(client, phoneNumber=NUMBER) == DND


async def test_an_expired_entry_is_not_shown_and_does_not_suppress(client, sessionmaker):
    await acme(sessionmaker)
    await add_raw_entry(sessionmaker, NUMBER, expires_at=minutes_ago(1))
    await add_raw_entry(sessionmaker, "+919876543211")
    assert_problem(await client.get(f"/v1/dnc/{NUMBER}", auth=AUTH), 404)
    listed = (await client.get("/v1/dnc", auth=AUTH)).json()["entries"]
    assert [entry["number"] for entry in listed] == ["+919876543211"]
    assert_problem(await client.delete(f"/v1/dnc/{NUMBER}", auth=AUTH), 404)
    assert await answer(client, phoneNumber=NUMBER) == updated("Progressive")
    assert [lead.phone_number for lead in await all_leads(sessionmaker)] == [NUMBER]


async def test_a_put_of_an_expired_entry_lists_it_anew_201(client, sessionmaker):
    await acme(sessionmaker)
    await add_raw_entry(sessionmaker, NUMBER, expires_at=minutes_ago(60 * 24))
    response = await put(client, NUMBER, note="again")
    assert response.status_code == 201, response.text
    created = datetime.fromisoformat(response.json()["createdAt"])
    assert abs(created - utcnow()) < timedelta(minutes=1)
    assert response.json()["note"] == "again" and response.json()["expiresAt"] is None
    assert await answer(client, phoneNumber=NUMBER) == DND


async def test_the_list_pages_by_number_with_an_opaque_cursor(client, sessionmaker):
    await acme(sessionmaker)
    numbers = [f"+9198765000{n:02d}" for n in range(7)]
    for number in reversed(numbers):
        assert (await put(client, number)).status_code == 201
    await add_raw_entry(sessionmaker, "+9198765000025", expires_at=minutes_ago(1))  # skipped
    pages = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        response = await client.get("/v1/dnc", params=params, auth=AUTH)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"entries", "nextCursor"}
        pages.append([entry["number"] for entry in body["entries"]])
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert pages == [numbers[0:3], numbers[3:6], numbers[6:7]]


async def test_the_last_full_page_has_no_next_cursor(client, sessionmaker):
    await acme(sessionmaker)
    for n in range(4):
        await put(client, f"+9198765000{n:02d}")
    first = (await client.get("/v1/dnc", params={"limit": 2}, auth=AUTH)).json()
    second = await client.get(
        "/v1/dnc", params={"limit": 2, "cursor": first["nextCursor"]}, auth=AUTH
    )
    assert [e["number"] for e in second.json()["entries"]] == ["+919876500002", "+919876500003"]
    assert second.json()["nextCursor"] is None


async def test_the_list_holds_100_entries_a_page_by_default(client, sessionmaker):
    await acme(sessionmaker)
    for n in range(101):
        await add_raw_entry(sessionmaker, f"+91987650{n:04d}")
    first = (await client.get("/v1/dnc", auth=AUTH)).json()
    assert len(first["entries"]) == 100 and first["nextCursor"]
    rest = await client.get("/v1/dnc", params={"cursor": first["nextCursor"]}, auth=AUTH)
    assert [e["number"] for e in rest.json()["entries"]] == ["+919876500100"]
    assert rest.json()["nextCursor"] is None


async def test_an_empty_list_is_one_page_without_a_cursor(client, sessionmaker):
    await acme(sessionmaker)
    response = await client.get("/v1/dnc", auth=AUTH)
    assert response.json() == {"entries": [], "nextCursor": None}


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not a cursor",
        "@@@",
        base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),  # not UTF-8
        "A",  # not base64 of anything
        "x" * 65,
    ],
)
async def test_a_bad_cursor_answers_422(client, sessionmaker, cursor):
    await acme(sessionmaker)
    await put(client, NUMBER)
    response = await client.get("/v1/dnc", params={"cursor": cursor}, auth=AUTH)
    assert_problem(response, 422, "cursor")


@pytest.mark.parametrize("limit", ["0", "1001", "ten"])
async def test_a_limit_outside_1_to_1000_answers_422(client, sessionmaker, limit):
    await acme(sessionmaker)
    response = await client.get("/v1/dnc", params={"limit": limit}, auth=AUTH)
    assert_problem(response, 422, "limit")


async def test_a_limit_of_1000_is_allowed(client, sessionmaker):
    await acme(sessionmaker)
    response = await client.get("/v1/dnc", params={"limit": 1000}, auth=AUTH)
    assert response.status_code == 200


CALLS = [
    ("PUT", f"/v1/dnc/{NUMBER}"),
    ("GET", f"/v1/dnc/{NUMBER}"),
    ("DELETE", f"/v1/dnc/{NUMBER}"),
    ("GET", "/v1/dnc"),
]


@pytest.mark.parametrize(("method", "path"), CALLS)
async def test_every_endpoint_answers_401_without_or_with_wrong_credentials(
    client, sessionmaker, method, path
):
    await acme(sessionmaker)
    missing = await client.request(method, path)
    assert_problem(missing, 401, "HTTP Basic")
    assert missing.headers["www-authenticate"] == 'Basic realm="dialbase"'
    for auth in (
        httpx.BasicAuth("acme", "not-the-key"),
        httpx.BasicAuth("nobody", "acme-secret-key"),
    ):
        wrong = await client.request(method, path, auth=auth)
        assert_problem(wrong, 401, "wrong user name or API key")
        assert wrong.headers["www-authenticate"] == 'Basic realm="dialbase"'
    bad = await client.request(method, path, headers={"Authorization": "Basic %%%"})
    assert_problem(bad, 401)
    assert (await client.get("/v1/dnc", auth=AUTH)).json()["entries"] == []


async def test_an_account_sees_only_its_own_list(client, sessionmaker):
    await acme(sessionmaker)
    await make_account(sessionmaker, "other", "other-secret-key")
    other = httpx.BasicAuth("other", "other-secret-key")
    await put(client, NUMBER)
    assert_problem(await client.get(f"/v1/dnc/{NUMBER}", auth=other), 404)
    assert_problem(await client.delete(f"/v1/dnc/{NUMBER}", auth=other), 404)
    assert (await client.get("/v1/dnc", auth=other)).json()["entries"] == []
    assert (await put(client, NUMBER, auth=other)).status_code == 201  # a list of its own
    assert (await client.get(f"/v1/dnc/{NUMBER}", auth=AUTH)).status_code == 200


async def test_a_number_changing_country_reads_the_current_default(client, sessionmaker):
    await acme(sessionmaker)
    await put(client, "09876543210")  # no default country: kept as sent
    await set_country(sessionmaker, "IN")
    assert_problem(await client.get("/v1/dnc/09876543210", auth=AUTH), 404, NUMBER)


async def test_the_openapi_document_describes_the_dnc_operations(client):
    document = (await client.get("/openapi.json")).json()
    one = document["paths"]["/v1/dnc/{number}"]
    assert set(one) == {"put", "get", "delete"}
    assert document["paths"]["/v1/dnc"]["get"]["tags"] == ["do-not-call"]
    assert {"200", "201", "401", "422"} <= set(one["put"]["responses"])
    assert {"204", "404"} <= set(one["delete"]["responses"])
    for operation in (*one.values(), document["paths"]["/v1/dnc"]["get"]):
        for status, response in operation["responses"].items():
            if not status.startswith("2"):
                assert list(response["content"]) == ["application/problem+json"]
    entry = document["components"]["schemas"]["DncEntryOut"]
    assert set(entry["properties"]) == {"number", "expiresAt", "note", "createdAt"}
    page = document["components"]["schemas"]["DncPage"]
    assert set(page["properties"]) == {"entries", "nextCursor"}
