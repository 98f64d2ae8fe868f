"""POST /v1/campaigns/{campaign}/imports: a CSV or XLSX upload, streamed to disk, checked,
queued (202), then added by the runner; every refusal leaves no file and no import."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from dialbase.config import Settings
from dialbase.db import session_scope
from dialbase.imports import upload_routes
from dialbase.imports.models import Import
from tests.compat.helpers import client_for, running_app
from tests.conftest import Backend, RedisPeer
from tests.factories import leads_of, make_account, make_campaign
from tests.faults.lost import fails_at

AUTH = httpx.BasicAuth("acme", "acme-secret-key")
URL = "/v1/campaigns/Sales/imports"
CSV = b"PhoneNumber,Name,Priority,City\n9876543210,Asha,2,Pune\nnot-a-number,Short,1,Goa\n"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MULTIPART_HELP = "send multipart/form-data with the file in a part named 'file'"


def problem(status: int, title: str, detail: str) -> dict[str, Any]:
    return {"type": "about:blank", "title": title, "status": status, "detail": detail}


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return backend.settings(import_dir=str(tmp_path / "imports"))


@pytest.fixture
async def acme(sessionmaker: Any) -> None:
    await make_account(sessionmaker)
    await make_campaign(sessionmaker)
    await make_campaign(sessionmaker, "Inbound", direction="inbound")
    await make_account(sessionmaker, "other", "other-secret-key")
    await make_campaign(sessionmaker, "Theirs", username="other")


def uploads(settings: Settings) -> list[str]:
    folder = Path(settings.import_dir) / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def imports_count(sessionmaker: Any) -> int:
    async with session_scope(sessionmaker) as session:
        return int(await session.scalar(select(func.count()).select_from(Import)) or 0)


async def wait_done(client: httpx.AsyncClient, location: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        view = (await client.get(location, auth=AUTH)).json()
        if view.get("status") == "done" or time.monotonic() > deadline:
            return view
        await asyncio.sleep(0.05)


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def test_a_csv_upload_is_queued_then_added_with_each_rows_line(
    client: httpx.AsyncClient, acme: None, sessionmaker: Any, settings: Settings
) -> None:
    response = await client.post(
        URL,
        auth=AUTH,
        files={"file": ("leads.csv", CSV, "text/csv")},
        data={"checkDuplicate": "true"},
    )
    assert response.status_code == 202
    body = response.json()
    assert body == {"transactionId": body["transactionId"], "status": "queued"}
    assert body["transactionId"].isdigit()
    assert response.headers["location"] == f"/v1/imports/{body['transactionId']}"
    async with session_scope(sessionmaker) as session:
        record = await session.get(Import, int(body["transactionId"]))
        assert record is not None
        assert (record.source, record.columns, record.check_duplicate, record.start) == (
            "file",
            ["PhoneNumber", "Name", "Priority", "City"],
            True,
            False,
        )
        assert record.file_format == "csv"
    view = await wait_done(client, response.headers["location"])
    assert view["status"] == "done"
    assert (view["total"], view["added"], view["duplicates"], view["rejected"]) == (2, 1, 0, 1)
    assert view["rows"][0] == {
        "index": 0,
        "line": 2,
        "phoneNumber": "9876543210",
        "result": "added",
        "message": None,
    }
    assert view["rows"][1]["line"] == 3
    assert view["rows"][1]["result"] == "rejected"
    leads = await leads_of(sessionmaker)
    assert [(lead.name, lead.priority) for lead in leads] == [("Asha", 2)]
    assert uploads(settings) == []  # the runner removed the staged file when done


async def test_an_xlsx_upload_with_start_is_queued(
    client: httpx.AsyncClient, acme: None, sessionmaker: Any
) -> None:
    data = xlsx_bytes([["phonenumber", "Name"], [919876543210, "Asha"]])
    response = await client.post(
        URL,
        auth=AUTH,
        files={"file": ("Leads.XLSX", data, "application/octet-stream")},
        data={"action": "Start", "checkDuplicate": "false"},
    )
    assert response.status_code == 202, response.text
    async with session_scope(sessionmaker) as session:
        record = await session.get(Import, int(response.json()["transactionId"]))
        assert record is not None
        assert (record.file_format, record.columns, record.start, record.check_duplicate) == (
            "xlsx",
            ["phonenumber", "Name"],
            True,
            False,
        )
    view = await wait_done(client, response.headers["location"])
    assert (view["status"], view["added"]) == ("done", 1)


async def test_a_file_named_without_extension_is_read_by_its_media_type(
    client: httpx.AsyncClient, acme: None
) -> None:
    response = await client.post(URL, auth=AUTH, files={"file": ("upload", CSV, "text/csv")})
    assert response.status_code == 202


REFUSALS = [
    (
        "no-file",
        {"data": {"checkDuplicate": "true"}, "files": {"x": ("a.txt", b"1", "text/plain")}},
        422,
        "Unprocessable Entity",
        f"no file: {MULTIPART_HELP}",
    ),
    (
        "not-multipart",
        {"json": {"file": "PhoneNumber\n1"}},
        415,
        "Unsupported Media Type",
        f"the body is not multipart/form-data: {MULTIPART_HELP}",
    ),
    (
        "unknown-format",
        {"files": {"file": ("leads.xls", b"\xd0\xcf\x11\xe0", "application/vnd.ms-excel")}},
        415,
        "Unsupported Media Type",
        "the file is neither CSV nor XLSX: name it .csv or .xlsx, or send it as text/csv or"
        " the XLSX media type",
    ),
    (
        "no-phone-column",
        {"files": {"file": ("leads.csv", b"Phone,Name\n9876543210,A\n", "text/csv")}},
        422,
        "Unprocessable Entity",
        "file: no PhoneNumber column: the first row must name one column PhoneNumber",
    ),
    (
        "empty-file",
        {"files": {"file": ("leads.csv", b"", "text/csv")}},
        422,
        "Unprocessable Entity",
        "file: the file is empty: the first row must name the columns",
    ),
    (
        "not-utf8",
        {"files": {"file": ("leads.csv", b"PhoneNumber,Name\n1,ok\n2,Jos\xe9\n", "text/csv")}},
        422,
        "Unprocessable Entity",
        "file: line 3 is not UTF-8 text: save the file as CSV UTF-8",
    ),
    (
        "broken-xlsx",
        {"files": {"file": ("leads.xlsx", b"PK\x03\x04 not really", XLSX_TYPE)}},
        422,
        "Unprocessable Entity",
        "file: not a readable XLSX workbook (BadZipFile)",
    ),
    (
        "bad-check-duplicate",
        {"files": {"file": ("leads.csv", CSV, "text/csv")}, "data": {"checkDuplicate": "yes"}},
        422,
        "Unprocessable Entity",
        "checkDuplicate: true or false",
    ),
    (
        "bad-action",
        {"files": {"file": ("leads.csv", CSV, "text/csv")}, "data": {"action": "stop"}},
        422,
        "Unprocessable Entity",
        "action: start, or leave it out",
    ),
    (
        "two-files",
        {"files": [("file", ("a.csv", CSV, "text/csv")), ("file", ("b.csv", CSV, "text/csv"))]},
        422,
        "Unprocessable Entity",
        f"more than one file: {MULTIPART_HELP}",
    ),
]


@pytest.mark.parametrize(
    ("sent", "status", "title", "detail"),
    [r[1:] for r in REFUSALS],
    ids=[r[0] for r in REFUSALS],
)
async def test_a_refused_upload_answers_a_problem_and_leaves_nothing(
    client: httpx.AsyncClient,
    acme: None,
    sessionmaker: Any,
    settings: Settings,
    sent: dict[str, Any],
    status: int,
    title: str,
    detail: str,
) -> None:
    response = await client.post(URL, auth=AUTH, **sent)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == problem(status, title, detail)
    assert uploads(settings) == []
    assert await imports_count(sessionmaker) == 0


@pytest.mark.parametrize(
    ("url", "auth", "status", "detail"),
    [
        ("/v1/campaigns/Nope/imports", AUTH, 404, "account 'acme' has no campaign named 'Nope'"),
        (
            "/v1/campaigns/Theirs/imports",
            AUTH,
            404,
            "account 'acme' has no campaign named 'Theirs'",
        ),
        (
            "/v1/campaigns/Inbound/imports",
            AUTH,
            422,
            "campaign 'Inbound' is not outbound: it cannot import leads",
        ),
        (URL, httpx.BasicAuth("acme", "wrong"), 401, "wrong user name or API key"),
        (URL, None, 401, "send HTTP Basic credentials: your user name and API key"),
    ],
    ids=["unknown", "another-accounts", "inbound", "wrong-key", "no-credentials"],
)
async def test_campaign_and_credentials_are_checked_before_the_body(
    client: httpx.AsyncClient,
    acme: None,
    settings: Settings,
    url: str,
    auth: httpx.BasicAuth | None,
    status: int,
    detail: str,
) -> None:
    response = await client.post(url, auth=auth, files={"file": ("a.csv", CSV, "text/csv")})
    assert response.status_code == status
    assert response.json()["detail"] == detail
    assert uploads(settings) == []


async def test_an_upload_over_the_limit_is_413_declared_or_streamed(
    client: httpx.AsyncClient,
    acme: None,
    sessionmaker: Any,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(upload_routes, "DEFAULT_MAX_FILE_BYTES", 4096)
    big = b"PhoneNumber\n" + b"9876543210\n" * 1000
    detail = "the upload is larger than 4096 bytes (0 MiB)"
    declared = await client.post(URL, auth=AUTH, files={"file": ("a.csv", big, "text/csv")})
    assert (declared.status_code, declared.json()["detail"]) == (413, detail)

    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield head
        for _ in range(20):
            yield b"9876543210\n" * 100
        yield f"\r\n--{boundary}--\r\n".encode()

    streamed = await client.post(
        URL,
        auth=AUTH,
        content=chunks(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert (streamed.status_code, streamed.json()["detail"]) == (413, detail)
    assert uploads(settings) == []
    assert await imports_count(sessionmaker) == 0
    small = await client.post(URL, auth=AUTH, files={"file": ("a.csv", CSV, "text/csv")})
    assert small.status_code == 202


@pytest.mark.parametrize("point", ["INSERT INTO IMPORTS", "COMMIT"])
async def test_a_lost_database_connection_answers_503_and_leaves_nothing(
    backend: Backend, tmp_path: Path, point: str
) -> None:
    settings = backend.settings(import_dir=str(tmp_path / "imports"))
    async with running_app(settings) as app:
        sessions = app.services.sessionmaker
        await make_account(sessions)
        await make_campaign(sessions)
        async with client_for(app) as client:
            with fails_at(app, backend, point):
                failed = await client.post(
                    URL, auth=AUTH, files={"file": ("a.csv", CSV, "text/csv")}
                )
            assert failed.status_code == 503
            assert failed.headers["content-type"] == "application/problem+json"
            assert failed.json()["status"] == 503
            assert uploads(settings) == []
            assert await imports_count(sessions) == 0
            again = await client.post(URL, auth=AUTH, files={"file": ("a.csv", CSV, "text/csv")})
            assert again.status_code == 202


async def test_a_hung_redis_does_not_break_uploads(
    backend: Backend, tmp_path: Path, redis_peer: RedisPeer
) -> None:
    settings = backend.settings(
        import_dir=str(tmp_path / "imports"), redis_url=redis_peer.url, redis_timeout_ms=100
    )
    async with running_app(settings) as app:
        await make_account(app.services.sessionmaker)
        await make_campaign(app.services.sessionmaker)
        async with client_for(app) as client:
            started = time.monotonic()
            wrong = await client.post(
                URL, auth=httpx.BasicAuth("acme", "wrong"), files={"file": ("a.csv", CSV)}
            )
            assert wrong.status_code == 401  # its failed-authentication count fell back
            done = await client.post(URL, auth=AUTH, files={"file": ("a.csv", CSV, "text/csv")})
            assert done.status_code == 202
            assert time.monotonic() - started < 5


async def test_a_relative_import_dir_is_stored_as_an_absolute_path(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with running_app(backend.settings(import_dir="relative-imports")) as app:
        sessions = app.services.sessionmaker
        await make_account(sessions)
        await make_campaign(sessions)
        async with client_for(app) as client:
            response = await client.post(URL, auth=AUTH, files={"file": ("a.csv", CSV)})
            assert response.status_code == 202
        async with session_scope(sessions) as session:
            record = await session.get(Import, int(response.json()["transactionId"]))
            assert record is not None and record.file_path is not None
            assert Path(record.file_path).parent == tmp_path / "relative-imports" / "uploads"
