"""Posting to AddCampaignData, and the contract's bodies spelled out independently of src."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from dialbase.app import create_app
from dialbase.config import Settings
from tests.conftest import CLIENT_ADDRESS
from tests.factories import all_leads, body, running_campaigns

URL = "/ca_apis/AddCampaignData"

# Contract checks 1 to 16, each answered with HTTP 200 and exactly this body.
CHECK: dict[int, dict[str, Any]] = {
    1: {"status": "false", "message": "Api Key Should Not be Null or Empty.", "data": None},
    2: {"status": "false", "message": "Username Should Not be Null or Empty.", "data": None},
    3: {"status": "false", "message": "Invalid User Details", "data": None},
    4: {"status": "false", "message": "Invalid action.", "data": None},
    5: {"status": "Error", "message": "Please provide campaign details"},
    6: {"status": "FAIL", "message": "No User Found or Campaign Name is Invalid"},
    7: {"status": "Fail", "message": "The selected campaign is not outbound"},
    8: {
        "status": "error",
        "message": "phone number should be numeric and must be between 3 to 16 digits"
        " and allows prefix +",
    },
    9: {"status": "Error", "message": "The priority value must be numeric and range from 0 to 99."},
    10: {
        "status": "Error",
        "message": "Invalid date format. Please pass date in format yyyy-MM-dd HH:mm:ss"
        " or yyyy-MM-dd",
    },
    11: {"status": "Error", "message": "The expiry date and time must be in the future"},
    12: {"status": "FAIL", "message": "Agent Is Empty!"},
    13: {"status": "FAIL", "message": "Agent is not correctly mapped!"},
    14: {"status": "FAIL", "message": "Please provide valid skill"},
    15: {"status": "Success", "message": "Number Already Existed"},
    16: {"status": "SUCCESS", "message": "Number Already Exist"},
}
UPDATED_ROUTED = {"status": "SUCCESS", "message": "SuccessFully Updated"}


def updated(dial_type: str) -> dict[str, str]:
    return {"status": "Success", "message": f"SuccessFully Updated {dial_type} Campaign"}


def started(dial_type: str) -> dict[str, str]:
    return {"status": "SUCCESS", "message": f"SuccessFully Updated, {dial_type} was started"}


def already_started(campaign: str) -> dict[str, str]:
    return {"status": "Success", "message": f"Campaign {campaign} Is Already Started"}


def stopped(dial_type: str) -> dict[str, str]:
    return {"status": "Success", "message": f"SuccessFully Updated {dial_type} Campaign Stoped"}


def invalid_action(dial_type: str) -> dict[str, str]:
    message = (
        f"Please pass the valid Campaign action SuccessFully Updated {dial_type} Campaign Data"
    )
    return {"status": "Success", "message": message}


async def post(
    client: httpx.AsyncClient, *, headers: dict[str, str] | None = None, **fields: Any
) -> httpx.Response:
    """POST ``factories.body(**fields)`` (OMIT drops a key)."""
    return await client.post(URL, json=body(**fields), headers=headers)


async def answer(
    client: httpx.AsyncClient, *, headers: dict[str, str] | None = None, **fields: Any
) -> dict[str, Any]:
    """The JSON answer of a documented outcome, which always comes with HTTP 200."""
    response = await post(client, headers=headers, **fields)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def assert_our_error(response: httpx.Response, status: int) -> None:
    """Our own HTTP errors: this status, and {"status": "false", "message": ..., "data": null}."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert set(data) == {"status", "message", "data"}
    assert data["status"] == "false" and data["data"] is None
    assert isinstance(data["message"], str) and data["message"].endswith(".")
    assert data["message"][0].isupper() and len(data["message"].split()) >= 3


def client_for(app: Any, address: str = CLIENT_ADDRESS) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://dialbase.test")


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[Any]:
    """An application of our own settings, its lifespan running (as conftest's ``app``)."""
    app = create_app(settings)
    async with app.lifespan():
        yield app


async def assert_rejected(
    client: httpx.AsyncClient, sessions: Any, check: int, **fields: Any
) -> None:
    """Contract check ``check`` answers, and nothing changes: no lead, no action applied.

    The body asks to start the campaign unless it says otherwise, so that an applied action
    would show.
    """
    fields.setdefault("action", "start")
    leads_before = [lead.id for lead in await all_leads(sessions)]
    running_before = await running_campaigns(sessions)
    assert await answer(client, **fields) == CHECK[check]
    assert [lead.id for lead in await all_leads(sessions)] == leads_before
    assert await running_campaigns(sessions) == running_before
