"""HTTP in, HTTP out for ``GET /ca_apis/campaignStatus`` and ``PUT /ca_apis/setCampaignStatus``.

The parameters come from a JSON body (the hosted product documents one even on the GET)
or the query string; a key in the body wins over the same key in the query string, and
keys match in any letter case (``auth.lower_keys``). The rules are in
``compat.campaign_status``; failures (a database outage, a bug) become the family's
``{"status": "false", ...}`` answers through ``dialbase.responses``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from dialbase.compat import http
from dialbase.compat.answers import false_body
from dialbase.compat.routes import NOT_JSON
from dialbase.services import services_of

router = APIRouter(tags=["compatibility"])

READ_KEYS = ("apikey", "username", "campaignname", "action")


async def _handle(request: Request, setting: bool) -> Response:
    service = services_of(request).campaign_status
    endpoint = service.set_status if setting else service.status
    return await http.serve(request, endpoint, query=True, text_keys=READ_KEYS)


def _false(*messages: str) -> dict[str, Any]:
    return {f"example{n}": {"value": false_body(message)} for n, message in enumerate(messages, 1)}


def _examples(**bodies: Any) -> dict[str, Any]:
    return {name: {"value": body} for name, body in bodies.items()}


_CREDENTIALS = [
    {
        "name": "apiKey",
        "in": "header",
        "required": False,
        "description": "The account's API key (basic key accounts); also `apiKey` or"
        " `api_key` in the body or query string.",
        "schema": {"type": "string"},
    },
    {
        "name": "Authorization",
        "in": "header",
        "required": False,
        "description": "`Bearer <token>` (token accounts): a token from Generate Token.",
        "schema": {"type": "string"},
    },
]


def _query(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description + " Also accepted in the JSON body, which wins.",
        "schema": {"type": "string"},
    }


def _body_schema(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "required": False,
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": properties, "additionalProperties": True}
            }
        },
    }


_HTTP_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "The body is not a JSON object, or a value holds a NUL character",
        "content": {"application/json": {"examples": _false(NOT_JSON)}},
    },
    413: {
        "description": "The body is over the size limit",
        "content": {
            "application/json": {"examples": _false("The request body is larger than 65536 bytes.")}
        },
    },
    429: {
        "description": "Over the account's per-minute budget of this endpoint, or the"
        " address's budget of failed authentications; see `Retry-After`",
        "content": {
            "application/json": {
                "examples": _false(
                    "Too many requests for this account or address; retry after 12 seconds."
                )
            }
        },
    },
    503: {
        "description": "The database is unavailable; nothing was changed",
        "content": {
            "application/json": {
                "examples": _false(
                    "The database is unavailable; nothing was stored. Try again shortly."
                )
            }
        },
    },
}

_STATUS_OK = _examples(
    running={
        "status": "success",
        "message": [
            {"CampaignID": "7", "CampaignName": "Sales", "UserName": "acme", "Position": "RUNNING"}
        ],
    },
    mandatory={"status": "failure", "message": "All parameters are mandatory"},
    unknown={"status": "failure", "message": "no record found"},
    no_key=false_body("Api Key Should Not be Null or Empty."),
    wrong_mode=false_body("Invalid action."),
    expired=false_body("Token Expired"),
)

_SET_OK = _examples(
    started={"status": "SUCCESS", "message": "SUCCESSFULLY UPDATED, Progressive was started"},
    stopped={"status": "SUCCESS", "message": "SUCCESSFULLY UPDATED, Progressive was stopped"},
    mandatory={"status": "failure", "message": "All parameters are mandatory"},
    unknown={"status": "failure", "message": "no record found"},
    inbound={"status": "failure", "message": "The selected campaign is not outbound"},
    bad_user=false_body("Invalid User Details"),
)


def _responses(ok: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": "Every documented outcome, success or not (docs/api.md)",
            "content": {"application/json": {"examples": ok}},
        },
        **_HTTP_ERRORS,
    }


@router.get(
    "/ca_apis/campaignStatus",
    summary="A campaign's status (compatible with CloudAgent's campaignStatus API)",
    description='See docs/api.md, "Campaign status and start/stop", for the checks in'
    " order and every answer. `Position` is RUNNING, COMPLETED or READY.",
    operation_id="campaignStatus",
    response_class=Response,
    responses=_responses(_STATUS_OK),
    openapi_extra={
        "parameters": [
            *_CREDENTIALS,
            _query("userName", "The account's user name."),
            _query("campaignName", "One of the account's campaigns."),
        ],
        "requestBody": _body_schema(
            {"userName": {"type": "string"}, "campaignName": {"type": "string"}}
        ),
    },
)
async def campaign_status(request: Request) -> Response:
    return await _handle(request, setting=False)


@router.put(
    "/ca_apis/setCampaignStatus",
    summary="Start or stop a campaign (compatible with CloudAgent's setCampaignStatus API)",
    description='See docs/api.md, "Campaign status and start/stop", for the checks in'
    " order and every answer. Also answers SUCCESS when the campaign was already so.",
    operation_id="setCampaignStatus",
    response_class=Response,
    responses=_responses(_SET_OK),
    openapi_extra={
        "parameters": [
            *_CREDENTIALS,
            _query("userName", "The account's user name."),
            _query("campaignName", "One of the account's outbound campaigns."),
            _query("action", "`Start` or `Stop`, any case."),
            _query("process", "Must be `true`."),
        ],
        "requestBody": _body_schema(
            {
                "userName": {"type": "string"},
                "campaignName": {"type": "string"},
                "action": {"type": "string", "enum": ["Start", "Stop"]},
                "process": {"type": ["boolean", "string"], "enum": [True, "true"]},
            }
        ),
    },
)
async def set_campaign_status(request: Request) -> Response:
    return await _handle(request, setting=True)
