"""OpenAPI description of the compatibility endpoint (documentation only).

The endpoint parses its body by hand (see ``compat.routes``), so these models are never
used to validate a request; they describe it in ``/openapi.json`` and ``/docs``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AddCampaignDataRequest(BaseModel):
    """Documented keys match in any letter case; every other key is an extra column."""

    model_config = ConfigDict(extra="allow")

    apiKey: str | None = Field(None, description="Or the `apiKey` header (preferred) or `api_key`.")
    userName: str
    campaignName: str
    phoneNumber: str | int = Field(description="`+` optional, then 3 to 16 digits.")
    Name: str | None = None
    action: str | None = Field(None, description="`start` or `stop`, any case.")
    checkDuplicate: bool | str | None = Field(None, description='`true` or `"true"` turns it on.')
    priority: int | str | None = Field(None, description="0 to 99; 1 when absent.")
    expiryDate: str | None = Field(
        None, description="`yyyy-MM-dd HH:mm:ss` or `yyyy-MM-dd`, in the account's time zone."
    )
    agentId: str | None = Field(None, description="Required by agent-wise campaigns.")
    skill: str | None = Field(None, description="Required by skill-wise campaigns.")


class ContractAnswer(BaseModel):
    """Every documented outcome: HTTP 200, `status` and `message` spelt as the contract does."""

    status: str
    message: str
    data: None = None


class HTTPErrorBody(BaseModel):
    status: str = "false"
    message: str
    data: None = None


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _response(description: str, model: type[BaseModel]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


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
            "responses": {
                "200": _response("Every documented outcome, success or not", ContractAnswer),
                "400": _response("The body is not a JSON object", HTTPErrorBody),
                "413": _response("The body or an extra column is over its limit", HTTPErrorBody),
                "429": _response("Over the rate limit; see Retry-After", HTTPErrorBody),
                "503": _response("The database is unavailable; nothing stored", HTTPErrorBody),
            },
        }
    }
    return schema
