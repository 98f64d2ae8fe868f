"""What a queued bulk request stores: the import with its options and its rows exactly as
sent, committed before the answer; and, processed by the runner, its results through
``GET /v1/imports/{transactionId}``."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from dialbase.accounts.models import Account
from dialbase.campaigns.models import Campaign
from dialbase.db import session_scope
from tests.compat.test_bulk import (
    assert_queued,
    bulk_answer,
    bulk_app,
    imports_of,
    staged_rows,
)
from tests.conftest import Backend, client_for_app
from tests.factories import OMIT, leads_of, make_account, make_campaign


@pytest.fixture
def settings(backend: Backend):  # type: ignore[no-untyped-def]
    return backend.settings(bulk_rate_limit=1000)


@pytest.fixture
async def app(settings):  # type: ignore[no-untyped-def]
    async with bulk_app(settings) as application:
        yield application


@pytest.fixture(autouse=True)
async def accounts(sessionmaker: Any) -> None:
    await make_account(sessionmaker)
    await make_campaign(sessionmaker)


async def _ids(sessions: Any) -> tuple[int, int]:
    async with session_scope(sessions) as session:
        account = await session.scalar(select(Account.id).where(Account.username == "acme"))
        campaign = await session.scalar(select(Campaign.id).where(Campaign.name == "Sales"))
    assert account is not None and campaign is not None
    return account, campaign


async def test_the_import_and_its_rows_are_stored_exactly_as_sent(client, sessionmaker):
    data = {
        "map": ["PhoneNumber", "name", "PRIORITY", "ExpiryDate", "Order No"],
        "data": [
            ["9876543210", "Asha", 2, "2099-01-01", "A-1"],
            [9876543211],
            ["+919876543212", None, "", "  ", 17.5],
            ["12", "Too short"],
        ],
    }
    answer = await bulk_answer(
        client, bulkData=data, action="start", checkDuplicate=True, callBackUrl="http://8.8.8.8/cb"
    )
    transaction = assert_queued(answer)
    [stored] = await imports_of(sessionmaker)
    account_id, campaign_id = await _ids(sessionmaker)
    assert stored.id == transaction
    assert (stored.account_id, stored.campaign_id) == (account_id, campaign_id)
    assert (stored.source, stored.status) == ("bulk", "queued")
    assert stored.columns == ["PhoneNumber", "name", "PRIORITY", "ExpiryDate", "Order No"]
    assert (stored.check_duplicate, stored.start) == (True, True)
    assert stored.callback_url == "http://8.8.8.8/cb"
    assert (stored.total, stored.next_row, stored.file_path) == (4, 0, None)
    assert await staged_rows(sessionmaker, transaction) == [
        ["9876543210", "Asha", 2, "2099-01-01", "A-1"],
        [9876543211],
        ["+919876543212", None, "", "  ", 17.5],
        ["12", "Too short"],
    ]
    assert await leads_of(sessionmaker) == []  # added later, by the runner


async def test_each_request_gets_its_own_transaction_id(client, sessionmaker):
    first = assert_queued(await bulk_answer(client))
    second = assert_queued(await bulk_answer(client))
    assert second > first
    assert [i.id for i in await imports_of(sessionmaker)] == [first, second]


@pytest.mark.parametrize(
    "fields, on",
    [
        ({}, False),
        ({"checkDuplicate": True}, True),
        ({"checkDuplicate": "true"}, True),
        ({"checkDuplicate": " TRUE "}, True),
        ({"checkDuplicate": False}, False),
        ({"checkDuplicate": "yes"}, False),
        ({"checkDuplicate": 1}, False),
        ({"checkDuplicate": ""}, False),
        ({"isDelete": True}, True),
        ({"isDelete": "True"}, True),
        ({"isDelete": True, "checkDuplicate": False}, True),
        ({"isDelete": False, "checkDuplicate": True}, False),
        ({"isDelete": None, "checkDuplicate": True}, False),  # present, whatever its value
        ({"isDelete": "", "checkDuplicate": "true"}, False),
        ({"ISDELETE": "no", "CheckDuplicate": "true"}, False),
    ],
)
async def test_the_duplicate_rule_is_is_delete_when_present_else_check_duplicate(
    client, sessionmaker, fields, on
):
    assert_queued(await bulk_answer(client, **fields))
    [stored] = await imports_of(sessionmaker)
    assert stored.check_duplicate is on


@pytest.mark.parametrize(
    "action, start",
    [(OMIT, False), ("start", True), ("START", True), (" Start ", True), ("stop", False),
     ("", False), (None, False), (1, False)],
)  # fmt: skip
async def test_only_action_start_starts_the_campaign_after_the_rows(
    client, sessionmaker, action, start
):
    assert_queued(await bulk_answer(client, action=action))
    [stored] = await imports_of(sessionmaker)
    assert stored.start is start


# Processed by the runner --------------------------------------------------------------


async def _done(client: httpx.AsyncClient, transaction: int) -> dict[str, Any]:
    auth = httpx.BasicAuth("acme", "acme-secret-key")
    for _ in range(200):
        response = await client.get(f"/v1/imports/{transaction}", auth=auth)
        assert response.status_code == 200, response.text
        view = dict(response.json())
        if view["status"] == "done":
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"import {transaction} not done: {view}")


async def test_a_processed_bulk_import_reports_every_row(backend: Backend, sessionmaker):
    """acme and Sales exist already (``accounts``); this application runs the runner."""
    async with bulk_app(backend.settings(), runner=True) as app, client_for_app(app) as client:
        sessions = app.services.sessionmaker
        data = {
            "map": ["PhoneNumber", "Name", "Priority", "City"],
            "data": [
                ["9876543210", "Asha", 5, "Pune"],
                [9876543211, "Ravi"],
                ["12", "Short"],
                ["9876543210", "Again"],
                ["9876543212", "Bad priority", "abc"],
                ["9876543213", "", "", ""],
            ],
        }
        answer = await bulk_answer(client, bulkData=data, checkDuplicate="true", action="start")
        transaction = assert_queued(answer)
        view = await _done(client, transaction)
        assert view["startedAt"] is not None and view["finishedAt"] is not None
        del view["startedAt"], view["finishedAt"]
        assert view == {
            "transactionId": str(transaction),
            "status": "done",
            "total": 6,
            "added": 3,
            "duplicates": 1,
            "rejected": 2,
            "rows": [
                {"index": 0, "phoneNumber": "9876543210", "result": "added", "message": None},
                {"index": 1, "phoneNumber": "9876543211", "result": "added", "message": None},
                {
                    "index": 2,
                    "phoneNumber": "12",
                    "result": "rejected",
                    "message": "phone number should be numeric and must be between 3 to 16"
                    " digits and allows prefix +",
                },
                {
                    "index": 3,
                    "phoneNumber": "9876543210",
                    "result": "duplicate",
                    "message": "Number Already Exist",
                },
                {
                    "index": 4,
                    "phoneNumber": "9876543212",
                    "result": "rejected",
                    "message": "The priority value must be numeric and range from 0 to 99.",
                },
                {"index": 5, "phoneNumber": "9876543213", "result": "added", "message": None},
            ],
        }
        leads = await leads_of(sessions)
        assert [(lead.phone_number, lead.name, lead.priority) for lead in leads] == [
            ("9876543210", "Asha", 5),
            ("9876543211", "Ravi", 1),
            ("9876543213", None, 1),
        ]
        async with session_scope(sessions) as session:
            running = await session.scalar(select(Campaign.running).where(Campaign.name == "Sales"))
        assert running is True
        # Another account cannot see it.
        await make_account(sessions, "other", "other-secret-key")
        other = httpx.BasicAuth("other", "other-secret-key")
        assert (await client.get(f"/v1/imports/{transaction}", auth=other)).status_code == 404
