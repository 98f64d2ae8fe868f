"""HTTP in, HTTP out for ``POST .../AddCampaignBulkDataV4/addBulkData/format/json`` (the
rules are in ``compat.bulk``).

The body is read by hand (``compat.http``) up to ``DIALBASE_MAX_BULK_BODY_BYTES``: over it
HTTP 413, not a JSON object HTTP 400, a NUL character in the key, user or campaign name
HTTP 400. Every answer, these and a failure (a database outage: 503, nothing queued) included,
is in this endpoint's ``{"status": "error", "message": ...}`` shape; the path is outside
``/ca_apis/``, so the application's handlers would answer it in another shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from dialbase.compat import bulk, http
from dialbase.compat.auth import Credentials
from dialbase.responses import compat_answer
from dialbase.services import services_of

PATH = "/cloudAgentRestAPI/index.php/AddCampaignBulkDataV4/addBulkData/format/json"
TEXT_KEYS = ("apikey", "username", "campaignname")

router = APIRouter(tags=["compatibility"])

_CELL = {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}]}
_REQUEST = http.json_request(
    {
        "apiKey": {"type": "string", "description": "Or the `apiKey` header."},
        "userName": {"type": "string"},
        "campaignName": {"type": "string"},
        "bulkData": {
            "type": "object",
            "properties": {
                "map": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Column names: PhoneNumber (required), Name,"
                    " Priority, ExpiryDate, AgentId, skill, any other is an"
                    " extra column.",
                },
                "data": {
                    "type": "array",
                    "maxItems": 500,
                    "items": {"type": "array", "items": _CELL},
                },
            },
        },
        "action": {"type": "string", "enum": ["start"]},
        "checkDuplicate": {"oneOf": [{"type": "boolean"}, {"type": "string"}]},
        "isDelete": {
            "oneOf": [{"type": "boolean"}, {"type": "string"}],
            "description": "When present, decides the duplicate rule instead of checkDuplicate.",
        },
        "callBackUrl": {"type": "string", "format": "uri"},
    },
    {
        "userName": "acme",
        "apiKey": "acme-secret-key",
        "campaignName": "Sales",
        "bulkData": {
            "map": ["PhoneNumber", "Name", "Priority"],
            "data": [["9876543210", "Asha", 2], [9123456789, "Ravi"]],
        },
        "checkDuplicate": "true",
        "action": "start",
    },
)


def _responses() -> dict[int | str, Any]:
    properties: dict[str, Any] = {"status": {"type": "string"}, "message": {"type": "string"}}
    shape = {"type": "object", "properties": properties, "required": ["status", "message"]}
    queued_shape = {
        **shape,
        "properties": {**properties, "transactionId": {"type": "string"}},
    }
    examples = {
        "queued": ("Queued (committed)", bulk.queued(42)),
        "auth": ("Authentication refused", bulk.INVALID_USER),
        "data": ("bulkData malformed", bulk.INVALID_DATA),
        "rows": ("Over 500 rows", bulk.TOO_MANY_ROWS),
    }
    found: dict[int | str, Any] = {
        200: {
            "description": "Queued, or a refusal (checks 1 to 10)",
            "content": {
                "application/json": {
                    "schema": queued_shape,
                    "examples": {
                        key: {"summary": summary, "value": value}
                        for key, (summary, value) in examples.items()
                    },
                }
            },
        }
    }
    for status, description in {
        400: "The body is not a JSON object",
        413: "The body is larger than `DIALBASE_MAX_BULK_BODY_BYTES`",
        429: "Over the account's bulk requests per minute (see `Retry-After`)",
        503: "The database is unavailable; nothing was queued",
    }.items():
        found[status] = {
            "description": description,
            "content": {"application/json": {"schema": shape}},
        }
    return found


@router.post(
    PATH,
    summary="Queue up to 500 leads at once (Add Campaign Bulk Data V4)",
    description="Basic key (`apiKey` header or body key) or `Authorization: Bearer <token>`;"
    " `userName` in the body either way. Body keys match in any letter case. Answers at once"
    " with a transaction id; the rows are added afterwards, in order (see `GET"
    ' /v1/imports/{transactionId}`). See docs/api.md, "The bulk endpoint".',
    openapi_extra=_REQUEST,
    responses=_responses(),
    response_class=Response,
)
async def add_bulk_data(request: Request) -> Response:
    services = services_of(request)
    try:
        values = await http.json_values(
            request, text_keys=TEXT_KEYS, limit=services.settings.max_bulk_body_bytes
        )
    except http.BadRequest as exc:
        return http.respond(bulk.in_shape(exc.answer))
    service = bulk.AddCampaignBulkData(services.auth, services.sessionmaker, services.settings)
    credentials = Credentials.from_headers(request.headers)
    try:
        answer = await service.handle(
            values, credentials, http.address(request), str(request.base_url).rstrip("/")
        )
    except Exception as exc:  # an outage (503) or a bug (500, logged): in this shape
        answer = bulk.in_shape(compat_answer(exc))
    return http.respond(answer)
