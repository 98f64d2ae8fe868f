"""HTTP in, HTTP out for ``DELETE /ca_apis/deleteCampaignData`` and
``DELETE /ca_apis/DeleteBulkData`` (the rules are in ``compat.deletion``).

A DELETE with a JSON body, read by ``compat.http`` (400 when it is not a JSON object, 413
over ``DIALBASE_MAX_BODY_BYTES``, in the family's ``false`` shape). Errors raised here (a
database outage: 503) are answered in that shape by ``dialbase.responses``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from dialbase.compat import deletion, http
from dialbase.compat.answers import false_body
from dialbase.services import services_of

router = APIRouter(tags=["compatibility"])


# OpenAPI: the bodies are read by hand, so their shapes are described here.

_AUTH = (
    "Basic key (`apiKey` header, else body `apiKey`/`api_key`) or `Authorization: Bearer"
    " <token>`; `userName` in the body either way. Body keys match in any letter case."
)


def _example(body: dict[str, Any], summary: str) -> dict[str, Any]:
    return {"summary": summary, "value": body}


def _answers(examples: dict[str, tuple[str, dict[str, Any]]]) -> dict[int | str, Any]:
    """HTTP 200 with every documented body, and the family's HTTP-level errors."""
    error_schema = {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["false"]},
            "message": {"type": "string"},
            "data": {"type": "null"},
        },
    }
    http_errors = {
        400: "The body is not a JSON object",
        413: "The body is larger than `DIALBASE_MAX_BODY_BYTES`",
        429: "Over the rate limit (see `Retry-After`), or too many failed authentications",
        503: "The database is unavailable; nothing was deleted",
    }
    found: dict[int | str, Any] = {
        200: {
            "description": "Every documented outcome, success or refusal",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "status": {"type": "string"},
                            "message": {"type": "string"},
                            "deleted": {"type": "integer"},
                            "data": {"type": "null"},
                        },
                        "required": ["status", "message"],
                    },
                    "examples": {
                        key: _example(body, summary) for key, (summary, body) in examples.items()
                    },
                }
            },
        }
    }
    for status, description in http_errors.items():
        found[status] = {
            "description": description,
            "content": {"application/json": {"schema": error_schema}},
        }
    return found


_NUMBER = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
_ONE_REQUEST = http.json_request(
    {
        "userName": {"type": "string"},
        "apiKey": {"type": "string"},
        "campaignName": {"type": "string"},
        "phoneNumber": {
            **_NUMBER,
            "description": "Compared as AddCampaignData stored it (E.164"
            " with the account's default country).",
        },
        "name": {
            "type": "string",
            "description": "Only the leads of this name (any letter case).",
        },
    },
    {"userName": "acme", "campaignName": "Sales", "phoneNumber": "9876543210"},
)
_BULK_REQUEST = http.json_request(
    {
        "userName": {"type": "string"},
        "apiKey": {"type": "string"},
        "phoneNumber": {"type": "array", "items": _NUMBER, "maxItems": 100},
        "campaignName": {"type": "array", "items": {"type": "string"}, "maxItems": 100},
    },
    {
        "userName": "acme",
        "phoneNumber": ["9876543210", 9123456789],
        "campaignName": ["Sales", "Renewals"],
    },
)
_AUTH_EXAMPLE = ("Authentication refused", false_body("Invalid User Details"))


@router.delete(
    "/ca_apis/deleteCampaignData",
    summary="Delete a campaign's leads of a number",
    description=_AUTH
    + " Deletes every live lead of the campaign with that number (and `name`, when given),"
    ' whatever its state. See docs/api.md, "Deleting leads".',
    openapi_extra=_ONE_REQUEST,
    responses=_answers(
        {
            "deleted": ("Deleted", deletion.DELETED_ONE),
            "no_record": ("No live lead matched", deletion.NO_RECORD),
            "campaign": ("No such campaign", deletion.CAMPAIGN_INVALID),
            "several": ("phoneNumber an array or object", deletion.SEVERAL_NUMBERS),
            "auth": _AUTH_EXAMPLE,
        }
    ),
    response_class=Response,
)
async def delete_campaign_data(request: Request) -> Response:
    return await http.serve(request, services_of(request).deletion.delete_one)


@router.delete(
    "/ca_apis/DeleteBulkData",
    summary="Delete numbers from several campaigns at once",
    description=_AUTH
    + " Deletes every live lead whose number is listed from every listed campaign, in one"
    " transaction. Two requests per minute per account, one at a time."
    ' See docs/api.md, "Deleting leads".',
    openapi_extra=_BULK_REQUEST,
    responses=_answers(
        {
            "deleted": ("Deleted (the count of leads)", deletion.deleted_bulk(3)),
            "limit": ("Third request within 60 s, or one already running", deletion.MAX_LIMIT),
            "campaign": ("A campaign name is not the account's", deletion.CAMPAIGN_INVALID),
            "too_many": ("Over 100 numbers or campaign names", deletion.TOO_MANY),
            "auth": _AUTH_EXAMPLE,
        }
    ),
    response_class=Response,
)
async def delete_bulk_data(request: Request) -> Response:
    return await http.serve(request, services_of(request).deletion.delete_bulk)
