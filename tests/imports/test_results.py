"""GET /v1/imports/{transactionId} and its failed.csv: the running application's runner
adds the import; the account sees its own imports only."""

from __future__ import annotations

import asyncio
import re

from dialbase.db import session_scope
from dialbase.imports.service import ImportRequest, queue_rows
from tests.factories import make_account, make_campaign

AUTH = ("acme", "acme-secret-key")
INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


async def _queued(sessionmaker) -> int:  # type: ignore[no-untyped-def]
    await make_account(sessionmaker)
    await make_account(sessionmaker, "other", api_key="other-secret-key")
    await make_campaign(sessionmaker)
    from sqlalchemy import select

    from dialbase.campaigns.models import Campaign

    async with session_scope(sessionmaker) as session:
        campaign = await session.scalar(select(Campaign).where(Campaign.name == "Sales"))
        assert campaign is not None
        request = ImportRequest(
            campaign.account_id, campaign.id, "bulk", ["PhoneNumber", "Name", "city"], True, False
        )
        rows = [
            ["+919812345601", "Asha", "Pune"],
            ["12", 'Short, "quoted"', "Goa"],
            ["+919812345601", "Again"],
            ["+919812345602", "Bo", None],
        ]
        return await queue_rows(session, request, rows)


async def _done(client, import_id: int) -> dict:  # type: ignore[no-untyped-def,type-arg]
    for _ in range(200):
        answer = await client.get(f"/v1/imports/{import_id}", auth=AUTH)
        assert answer.status_code == 200
        if answer.json()["status"] == "done":
            return answer.json()  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError("the import was not done in 10 s")


async def test_the_results_view_and_failed_csv(client, sessionmaker):
    import_id = await _queued(sessionmaker)
    body = await _done(client, import_id)
    assert INSTANT.fullmatch(body.pop("startedAt"))
    assert INSTANT.fullmatch(body.pop("finishedAt"))
    assert body == {
        "transactionId": str(import_id),
        "status": "done",
        "total": 4,
        "added": 2,
        "duplicates": 1,
        "rejected": 1,
        "rows": [
            {"index": 0, "phoneNumber": "+919812345601", "result": "added", "message": None},
            {
                "index": 1,
                "phoneNumber": "12",
                "result": "rejected",
                "message": "phone number should be numeric and must be between 3 to 16 digits"
                " and allows prefix +",
            },
            {
                "index": 2,
                "phoneNumber": "+919812345601",
                "result": "duplicate",
                "message": "Number Already Exist",
            },
            {"index": 3, "phoneNumber": "+919812345602", "result": "added", "message": None},
        ],
    }
    page = await client.get(f"/v1/imports/{import_id}?offset=2&limit=1", auth=AUTH)
    assert [row["index"] for row in page.json()["rows"]] == [2]
    failed = await client.get(f"/v1/imports/{import_id}/failed.csv", auth=AUTH)
    assert failed.status_code == 200
    assert failed.headers["content-type"] == "text/csv; charset=utf-8"
    assert failed.text == (
        "PhoneNumber,Name,city,reason\r\n"
        '12,"Short, ""quoted""",Goa,phone number should be numeric and must be between 3 to 16'
        " digits and allows prefix +\r\n"
    )


async def test_another_account_s_or_an_unknown_import_is_404_and_no_credentials_401(
    client, sessionmaker
):
    import_id = await _queued(sessionmaker)
    not_found = {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "no import with this transaction id in this account",
    }
    for path in (f"/v1/imports/{import_id}", f"/v1/imports/{import_id}/failed.csv"):
        answer = await client.get(path, auth=("other", "other-secret-key"))
        assert (answer.status_code, answer.json()) == (404, not_found)
        assert answer.headers["content-type"] == "application/problem+json"
        assert (await client.get(path)).status_code == 401
    for bad in ("999999", "abc", "99999999999999999999999", "-1"):
        answer = await client.get(f"/v1/imports/{bad}", auth=AUTH)
        assert (answer.status_code, answer.json()) == (404, not_found)
