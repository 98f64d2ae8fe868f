"""Request ids, the log formats, and what never reaches a log line (both backends where a
request runs)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest

from dialbase.observability import logs
from dialbase.observability.logs import JsonFormatter, TextFormatter, scrub
from tests.factories import body, make_account, make_campaign

ADD = "/ca_apis/AddCampaignData"
LEGACY = "/cloudAgentRestAPI/index.php/CloudAgent/CloudAgentAPI/addCamapaignData"
MADE = re.compile(r"[0-9a-f]{16}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lead 9876543210 stored", "lead ******3210 stored"),
        ("+919876543210 and 14155550123", "*********3210 and *******0123"),
        (
            "short 123456, date 2026-11-28, time 12:30:45",
            "short 123456, date 2026-11-28, time 12:30:45",
        ),
        (
            "GET /x/api_key/K1-secret/campaign_name/Sales",
            "GET /x/api_key/[redacted]/campaign_name/Sales",
        ),
        ("?apiKey=K2&phone=1", "?apiKey=[redacted]&phone=1"),
        ('{"apiKey": "K3", "api_key":"K4"}', '{"apiKey": "[redacted]", "api_key":"[redacted]"}'),
        ("Authorization: Bearer abc.def", "Authorization: Bearer [redacted]"),
        ("{'authorization': 'Basic dXNlcjpwYXNz'}", "{'authorization': 'Basic [redacted]'}"),
        ("got eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJ4In0.sig-_x", "got [token]"),
        ("POST /ca_apis/CAToken/generateToken", "POST /ca_apis/CAToken/generateToken"),
    ],
)
def test_scrub_masks_numbers_and_removes_credentials(text: str, expected: str) -> None:
    assert scrub(text) == expected


def record(message: str, *args: Any, exc: BaseException | None = None) -> logging.LogRecord:
    info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("dialbase.x", logging.ERROR, __file__, 1, message, args, info)


def test_json_lines_scrub_messages_and_tracebacks_and_carry_the_request_id() -> None:
    try:
        raise ValueError("duplicate key (phone_number)=(9876543210) apiKey=K9")
    except ValueError as exc:
        error = exc
    info, token = logs.begin("req-1")
    try:
        line = JsonFormatter().format(record("refused %s", "919876543210", exc=error))
    finally:
        logs.end(token)
    entry = json.loads(line)
    assert entry["message"] == "refused ********3210"
    assert entry["request_id"] == info.request_id == "req-1"
    assert entry["level"] == "error" and entry["logger"] == "dialbase.x"
    assert "9876543210" not in line and "K9" not in line and "ValueError" in entry["error"]
    assert "\n" not in line


def test_text_lines_are_scrubbed_too() -> None:
    line = TextFormatter(fmt="%(levelprefix)s %(message)s", use_colors=False).format(
        record("key %s for %s", "apiKey=K7", "9876543210")
    )
    assert line == "ERROR:    key apiKey=[redacted] for ******3210"


async def test_a_sane_request_id_is_echoed_any_other_is_replaced(client, sessionmaker) -> None:
    await make_account(sessionmaker)
    await make_campaign(sessionmaker)
    given = "abc-123_XYZ.789:0"
    requests = [("POST", ADD, {"json": body()}), ("GET", LEGACY, {}), ("GET", "/healthz", {}),
                ("GET", "/nowhere", {})]  # fmt: skip
    for method, path, extra in requests:
        answer = await client.request(method, path, headers={"X-Request-ID": given}, **extra)
        assert answer.headers["x-request-id"] == given, path
        for insane in ("x" * 129, "has space", "tab\there", ""):
            answer = await client.request(method, path, headers={"X-Request-ID": insane}, **extra)
            assert MADE.fullmatch(answer.headers["x-request-id"]), (path, insane)
        made = {(await client.request(method, path, **extra)).headers["x-request-id"] for _ in "ab"}
        assert len(made) == 2 and all(MADE.fullmatch(m) for m in made)


async def test_an_idempotent_replay_carries_its_own_request_id(client, sessionmaker) -> None:
    await make_account(sessionmaker)
    await make_campaign(sessionmaker)
    keyed = {"Idempotency-Key": "once"}
    first = await client.post(ADD, json=body(), headers={**keyed, "X-Request-ID": "first"})
    replay = await client.post(ADD, json=body(), headers={**keyed, "X-Request-ID": "second"})
    assert replay.headers["idempotent-replayed"] == "true"
    assert (first.headers["x-request-id"], replay.headers["x-request-id"]) == ("first", "second")
    assert replay.headers.get_list("x-request-id") == ["second"]


async def test_the_request_line_names_the_account_and_the_template(
    client, sessionmaker, caplog
) -> None:
    await make_account(sessionmaker)
    await make_campaign(sessionmaker)
    with caplog.at_level(logging.INFO, logger=logs.ACCESS_LOGGER):
        await client.post(ADD, json=body(), headers={"X-Request-ID": "line-1"})
        await client.get(
            f"{LEGACY}/api_key/acme-secret-key/campaign_name/Sales/PhoneNumber/9876500001"
        )
        await client.get("/v1/campaigns/Sales/stats", auth=("acme", "wrong"))
    lines = [r for r in caplog.records if r.name == logs.ACCESS_LOGGER]
    seen = [(r.account, r.method, r.endpoint, r.status) for r in lines]  # type: ignore[attr-defined]
    assert seen == [
        ("acme", "POST", ADD, 200),
        ("acme", "GET", LEGACY, 200),
        (None, "GET", "/v1/campaigns/{campaign:path}/stats", 401),
    ]
    assert lines[0].request_id == "line-1"  # type: ignore[attr-defined]
    assert all("acme-secret-key" not in r.getMessage() and "9876500001" not in r.getMessage()
               for r in lines)  # fmt: skip
