"""OpenAPI description of the compatibility endpoint (documentation only).

The endpoint parses its body by hand (see ``compat.routes``), so these models are never
used to validate a request; they describe it in ``/openapi.json`` and ``/docs``. They say
what the endpoint really accepts: any JSON object. No key is required by the schema: a
missing API key, user name, campaign or phone number is answered HTTP 200 with the
contract's body for that check (docs/api.md, "Checks, in order").
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dialbase.compat.auth import RATE_LIMITED
from dialbase.errors import DATABASE_DOWN
from dialbase.leads.batch import OUTCOME_UNKNOWN
from dialbase.responses import INTERNAL

_MISSING = "Missing, `null` or blank: answered 200 with check {n}'s body."


class AddCampaignDataRequest(BaseModel):
    """Any JSON object. Documented keys match in any letter case; every other key is an
    extra column of the lead. Nothing is required here: each missing or bad value gets the
    HTTP 200 answer of its check (docs/api.md)."""

    model_config = ConfigDict(extra="allow")

    apiKey: str | None = Field(
        None,
        description="Read only when no `apiKey` header is sent (also `api_key`). "
        + _MISSING.format(n=1),
    )
    userName: str | None = Field(None, description="The account. " + _MISSING.format(n=2))
    campaignName: str | None = Field(
        None, description="One of the account's campaigns. " + _MISSING.format(n=5)
    )
    phoneNumber: str | int | None = Field(
        None,
        description="`+` optional, then 3 to 16 digits. Missing or malformed: answered 200"
        ' with `{"status": "error", "message": "phone number should be numeric ..."}`'
        " (check 8).",
    )
    Name: str | None = Field(None, description="The lead's name.")
    action: str | None = Field(None, description="`start` or `stop`, any case.")
    checkDuplicate: bool | str | None = Field(
        None, description='JSON `true` or `"true"` (any case) turns it on.'
    )
    priority: int | str | None = Field(None, description="0 to 99; 1 when the key is absent.")
    expiryDate: str | None = Field(
        None,
        description="`yyyy-MM-dd HH:mm:ss` or `yyyy-MM-dd`, in the account's time zone;"
        " must be in the future.",
    )
    agentId: str | None = Field(None, description="Required by agent-wise campaigns.")
    skill: str | None = Field(None, description="Required by skill-wise campaigns.")


class ContractAnswer(BaseModel):
    """Every documented outcome: HTTP 200, `status` and `message` spelt as the contract does.

    `data` (always `null`) is sent only by the answers whose `status` is `"false"`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"status": "Success", "message": "SuccessFully Updated Progressive Campaign"},
                {"status": "false", "message": "Invalid User Details", "data": None},
            ]
        }
    )

    status: str
    message: str
    data: None = None


class HTTPErrorBody(BaseModel):
    """dialbase's own answers on the compatible endpoint (not 200): nothing was changed."""

    status: Literal["false"]
    message: str = Field(description="A sentence saying what is wrong.")
    data: None


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _error(
    description: str, *messages: str, headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    examples = {
        f"example{n}": {"value": {"status": "false", "message": message, "data": None}}
        for n, message in enumerate(messages, 1)
    }
    content = {"schema": _ref(HTTPErrorBody), "examples": examples}
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": content},
    }
    if headers:
        response["headers"] = headers
    return response


RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}


def _responses() -> dict[str, Any]:
    return {
        "200": {
            "description": "Every documented outcome, success or not (docs/api.md)",
            "content": {"application/json": {"schema": _ref(ContractAnswer)}},
        },
        "400": _error(
            "The body is not a JSON object; a value nested deeper than 32 levels; a NUL"
            " character in a documented field",
            "The request body must be a JSON object.",
            "The value of 'X' is nested deeper than 32 levels.",
        ),
        "413": _error(
            "The body, the number of extra columns, an extra column's name or a value is"
            " over its limit",
            "The request body is larger than 65536 bytes.",
        ),
        "429": _error(
            "Over the rate limit (the account's, or the address's for failed"
            " authentications); see Retry-After",
            RATE_LIMITED.format(12),
            headers=RETRY_AFTER,
        ),
        "500": _error(
            "An unexpected server error; it is logged",
            INTERNAL,
        ),
        "503": _error(
            "The database is unavailable (nothing stored), or the connection was lost while"
            " the lead's batch was committed and its outcome could not be settled",
            DATABASE_DOWN,
            OUTCOME_UNKNOWN,
        ),
    }


def add_to_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (AddCampaignDataRequest, ContractAnswer, HTTPErrorBody):
        components[model.__name__] = model.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
    schema.setdefault("paths", {})["/ca_apis/AddCampaignData"] = {
        "post": {
            "tags": ["compatibility"],
            "summary": "Add a lead (compatible with CloudAgent's AddCampaignData API)",
            "description": "See docs/api.md for the checks, in order, and every answer.",
            "operationId": "addCampaignData",
            "parameters": [
                {"name": "apiKey", "in": "header", "required": False, "schema": {"type": "string"}}
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref(AddCampaignDataRequest)}},
            },
            "responses": _responses(),
        }
    }
    return schema
