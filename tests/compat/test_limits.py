"""Our own HTTP errors (400 not a JSON object, 413 over a limit) and "never a 500"."""

from __future__ import annotations

import json

import pytest

from tests.compat.helpers import (
    URL,
    answer,
    assert_our_error,
    client_for,
    post,
    running_app,
    updated,
)
from tests.factories import OMIT, all_leads, body

pytestmark = pytest.mark.usefixtures("acme")

SUCCESS = updated("Progressive")
JSON = {"Content-Type": "application/json"}


def padded(size: int, **fields: object) -> bytes:
    """A valid body, padded with JSON whitespace to exactly ``size`` bytes."""
    raw = json.dumps(body(**fields)).encode()
    assert len(raw) <= size
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"", b"[]", b'[{"userName": "acme"}]', b'"a string"', b"123", b"null",
     b"true", b'{"userName": "acme"', b"\xff\xfe{}", b'{"a": 1}{"b": 2}'],
    ids=["text", "empty", "array", "array-of-object", "string", "number", "null", "true",
         "truncated", "not-utf8", "two-objects"],
)  # fmt: skip
async def test_body_not_a_json_object_is_400(client, sessionmaker, raw):
    """Contract "our own additions": a body that is not a JSON object gets HTTP 400."""
    assert_our_error(await client.post(URL, content=raw, headers=JSON), 400)
    assert await all_leads(sessionmaker) == []


async def test_body_at_64_kib_is_accepted_and_one_byte_more_is_413(client, sessionmaker):
    """Contract "our own additions": a body over the size limit (64 KiB) gets HTTP 413."""
    response = await client.post(URL, content=padded(64 * 1024), headers=JSON)
    assert (response.status_code, response.json()) == (200, SUCCESS)
    response = await client.post(
        URL, content=padded(64 * 1024 + 1, phoneNumber="111"), headers=JSON
    )
    assert_our_error(response, 413)
    assert [lead.phone_number for lead in await all_leads(sessionmaker)] == ["9876543210"]


async def test_streamed_body_over_64_kib_is_413(client, sessionmaker):
    """Contract "our own additions": 413 also without a Content-Length (chunked upload)."""

    async def chunks():  # type: ignore[no-untyped-def]
        raw = padded(200 * 1024)
        for start in range(0, len(raw), 8192):
            yield raw[start : start + 8192]

    assert_our_error(await client.post(URL, content=chunks(), headers=JSON), 413)
    assert await all_leads(sessionmaker) == []


async def test_body_size_limit_is_configurable(backend, sessionmaker):
    """Contract "our own additions": the size limit is configurable (max_body_bytes)."""
    async with running_app(backend.settings(max_body_bytes=2048)) as app, client_for(app) as c:
        assert_our_error(await c.post(URL, content=padded(2049), headers=JSON), 413)
        response = await c.post(URL, content=padded(2048, phoneNumber="222"), headers=JSON)
        assert (response.status_code, response.json()) == (200, SUCCESS)
    assert [lead.phone_number for lead in await all_leads(sessionmaker)] == ["222"]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_json_body_is_read_whatever_its_content_type(client, content_type):
    """Project choice (contract silent): the body is read as JSON whatever the Content-Type.

    ``curl -d`` sends form-urlencoded by default; such clients keep working.
    """
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post(URL, content=json.dumps(body()).encode(), headers=headers)
    assert (response.status_code, response.json()) == (200, SUCCESS)


def extras(count: int, key_chars: int = 8, value: str = "v") -> dict[str, str]:
    return {f"x{i:0{key_chars - 1}d}": value for i in range(count)}


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        (extras(50), 200),
        (extras(51), 413),
        ({"k" * 64: "v"}, 200),
        ({"k" * 65: "v"}, 413),
        ({"notes": "v" * 1024}, 200),
        ({"notes": "v" * 1025}, 413),
        ({"notes": "é" * 1024}, 200),  # characters, not bytes (project choice)
        ({"notes": ["v" * 1030]}, 413),  # a JSON value's text counts
        ({"Name": "n" * 1025}, 413),  # documented keys too (project choice)
    ],
    ids=["50-columns", "51-columns", "name-64", "name-65", "value-1024", "value-1025",
         "value-1024-non-ascii", "json-value-over", "lead-name-over"],
)  # fmt: skip
async def test_extra_column_limits(client, sessionmaker, fields, status):
    """Contract inputs, extras "within the limits the project sets": over them, 413."""
    response = await post(client, **fields)
    if status == 413:
        assert_our_error(response, 413)
        assert await all_leads(sessionmaker) == []
    else:
        assert (response.status_code, response.json()) == (200, SUCCESS)
        [lead] = await all_leads(sessionmaker)
        assert lead.extra == fields


async def test_extra_column_limits_are_checked_before_the_api_key(client, sessionmaker):
    """Project choice (contract silent): a body over a limit is 413 even with no key at all."""
    assert_our_error(await post(client, apiKey=OMIT, **extras(51)), 413)


@pytest.mark.parametrize("key", ["userName", "Name", "agentId", "campaignName", "skill"])
async def test_nul_character_in_a_documented_field_is_400(client, sessionmaker, key):
    """Project choice (contract silent): PostgreSQL text cannot hold U+0000, so 400 on both."""
    assert_our_error(await post(client, **{key: "ab\x00c"}), 400)
    assert await all_leads(sessionmaker) == []


async def test_nul_character_in_an_extra_column_is_stored(client, sessionmaker):
    """Project choice: extra columns are JSON, where U+0000 is an escape; stored intact."""
    assert await answer(client, **{"no\x00te": "a\x00b"}) == SUCCESS
    [lead] = await all_leads(sessionmaker)
    assert lead.extra == {"no\x00te": "a\x00b"}


ODD_BODIES = [
    {"userName": {"nested": "acme"}},
    {"campaignName": {"name": "Sales"}},
    {"phoneNumber": {"n": 9876543210}},
    {"phoneNumber": [9876543210]},
    {"phoneNumber": True},
    {"phoneNumber": 10**30},
    {"phoneNumber": -9876543210},
    {"priority": 10**30},
    {"priority": {"p": 1}},
    {"expiryDate": {"d": "2099-01-01"}},
    {"expiryDate": 1e300},
    {"apiKey": {"k": "acme-secret-key"}},
    {"apiKey": 12345678},
    {"action": {"a": "start"}},
    {"checkDuplicate": {"c": True}},
    {"agentId": [1, 2]},
    {"skill": 3.5},
    {"Name": {"first": "Zoë"}},
    {"userName": None, "apiKey": None, "campaignName": None, "phoneNumber": None},
    {k: None for k in ("userName", "campaignName", "phoneNumber", "Name", "action",
                       "checkDuplicate", "priority", "expiryDate", "agentId", "skill")},
    {"名前": "山田", "전화": "010", "😀": "😀", "": "empty key", " ": " "},
    {"ǅ": 1, "İ": 2, "K": 3},  # keys whose case mapping is unusual
    {"deep": [[[[[[[[[[[{"a": [1, 2, {"b": None}]}]]]]]]]]]]]},
    {"big": 18446744073709551615, "small": -(2**63), "float": 1.5e308},
    {"userName": "acme\u2028", "campaignName": "Sales\ufeff"},
]  # fmt: skip


@pytest.mark.parametrize("odd", ODD_BODIES, ids=[f"odd-{i}" for i in range(len(ODD_BODIES))])
async def test_odd_bodies_never_answer_500(client, odd):
    """Contract "every documented outcome ... HTTP 200": odd bodies get 200/400/413 only."""
    response = await client.post(URL, json=body(**odd))
    assert response.status_code in (200, 400, 413)
    assert "Traceback" not in response.text
    assert isinstance(response.json(), dict)


@pytest.mark.parametrize(
    "raw",
    [b'{"userName": "acme", "apiKey": "x", "phoneNumber": 1' + b"0" * 400 + b"}",
     b"[" * 5000 + b"]" * 5000, b'{"a": ' * 2000 + b"1" + b"}" * 2000,
     b'{"phoneNumber": "\\ud800"}', b'{"a": NaN}', b'{"a": Infinity}'],
    ids=["long-integer", "deep-array", "deep-object", "lone-surrogate", "nan", "infinity"],
)  # fmt: skip
async def test_odd_raw_bodies_never_answer_500(client, raw):
    """Contract "our own additions": raw JSON oddities are 200/400/413, never a 500."""
    response = await client.post(URL, content=raw, headers=JSON)
    assert response.status_code in (200, 400, 413)
    assert isinstance(response.json(), dict)
