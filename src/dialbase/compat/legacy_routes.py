"""HTTP in, HTTP out for the older add endpoint, a bare ASGI endpoint like AddCampaignData's.

``app.Dialbase`` hands it every path ``matches`` accepts, whatever the method: GET (query
string) and POST (query string, ``application/x-www-form-urlencoded`` or
``multipart/form-data``) are served, anything else is 405. Parameters also come as
key/value path segments after the method segment; the path wins over the form, the form
over the query string (``compat.legacy.parameters``). Every answer, failures included
(400, 404, 405, 413, 429, 503), is written in the format the request asks for: XML unless
``format=json`` or ``addCamapaignData.json``. ``OPENAPI_PATHS`` describes it in
``/openapi.json``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.types import Receive, Scope, Send

from dialbase.compat import fields, legacy
from dialbase.compat.answers import Answer, false_body
from dialbase.compat.legacy import LegacyAddCampaignData, NotThisEndpoint
from dialbase.compat.routes import DISCARD_BYTES, ClientGone, read_body
from dialbase.responses import compat_answer
from dialbase.services import Services

PREFIX = "/cloudAgentRestAPI/index.php/CloudAgent/CloudAgentAPI/addCamapaignData"
METHODS = ("GET", "POST")
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
NOT_FOUND = "No such method of the older API; the one served is addCamapaignData."
NOT_ALLOWED = "Use GET or POST on this endpoint."
NOT_A_FORM = "The request body must be application/x-www-form-urlencoded or multipart/form-data."
NOT_UTF8 = "The parameters must be UTF-8 text, percent-encoded."
FILE_PART = "File uploads are not accepted: send every parameter as a plain form field."


def matches(path: str) -> bool:
    """Whether ``path`` is the older endpoint's (with path segments or ``.json``)."""
    return path == PREFIX or path.startswith((PREFIX + "/", PREFIX + "."))


class Refused(Exception):
    """The request cannot be read: answered with this status and message, nothing done."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.answer = Answer(false_body(message), status, headers or {})


@dataclass(slots=True)
class Asked:
    """The answer's format, as far as the request has been read."""

    json: bool = False


class LegacyEndpoint:
    """The ASGI endpoint; its services are set by the application's lifespan."""

    services: Services
    _service: LegacyAddCampaignData | None = None
    _built_for: Services | None = None

    @property
    def service(self) -> LegacyAddCampaignData:
        if self._service is None or self._built_for is not self.services:
            services = self.services
            self._service = LegacyAddCampaignData(services.auth, services.writer, services.dnc)
            self._built_for = services
        return self._service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        asked = Asked()
        try:
            answer = await self._answer(scope, receive, asked)
        except ClientGone:
            return
        except Refused as exc:
            answer = exc.answer
        except Exception as exc:  # one place turns every failure into an answer
            answer = compat_answer(exc)
        body, content_type = legacy.render(answer, asked.json)
        headers = [(b"content-type", content_type)]
        headers.extend((k.lower().encode(), v.encode()) for k, v in answer.headers.items())
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope, receive: Receive, asked: Asked) -> Answer:
        raw_query = scope.get("query_string", b"")
        try:
            target = legacy.target(_tail(scope))
        except NotThisEndpoint:
            raise Refused(404, NOT_FOUND) from None
        except UnicodeDecodeError:
            asked.json = legacy.wants_json(_pairs(raw_query, "replace"), None)
            raise Refused(400, NOT_UTF8) from None
        try:
            query = _pairs(raw_query)
        except UnicodeDecodeError:
            asked.json = legacy.wants_json(_pairs(raw_query, "replace"), target.extension)
            raise Refused(400, NOT_UTF8) from None
        # As far as the path and query string tell, for the answers before the form's.
        asked.json = legacy.wants_json([*target.segments, *query], target.extension)
        if scope["method"] not in METHODS:
            raise Refused(405, NOT_ALLOWED, {"Allow": ", ".join(METHODS)})
        form = await self._form(scope, receive) if scope["method"] == "POST" else []
        values = legacy.parameters(target.segments, form, query)
        asked.json = legacy.wants_json(values.items(), target.extension)
        try:
            body = legacy.split(values, self.services.field_limits)
        except fields.FieldLimitError as exc:
            raise Refused(413, str(exc)) from None
        except fields.FieldValueError as exc:
            raise Refused(400, str(exc)) from None
        client = scope.get("client")
        address = client[0] if client else "unknown"
        return await self.service.handle(body, address)

    async def _form(self, scope: Scope, receive: Receive) -> list[tuple[str, str]]:
        """The form body's fields, in order; none for an empty body."""
        headers = Headers(scope=scope)
        limit = self.services.settings.max_body_bytes
        declared = headers.get("content-length", "")
        too_large = Refused(413, f"The request body is larger than {limit} bytes.")
        if declared.isdigit() and int(declared) > DISCARD_BYTES:
            raise too_large  # refused unread
        raw = await read_body(receive, limit)
        if raw is None:
            raise too_large
        if not raw:
            return []
        kind = headers.get("content-type", "").partition(";")[0].strip().lower()
        if kind == FORM:
            try:
                return _pairs(raw)
            except UnicodeDecodeError:
                raise Refused(400, NOT_UTF8) from None
        if kind == MULTIPART:
            return await _multipart(headers, raw)
        raise Refused(400, NOT_A_FORM)


def _tail(scope: Scope) -> str:
    """The path after the method name, still percent-encoded when the server gives it so."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else scope["path"]
    if not path.startswith(PREFIX):  # the prefix itself percent-encoded: read it decoded
        path = scope["path"]
    return path[len(PREFIX) :]


def _pairs(raw: bytes, errors: str = "strict") -> list[tuple[str, str]]:
    """``a=1&b=2`` as pairs, in order; raises ``UnicodeDecodeError`` for bytes not UTF-8
    (unless ``errors="replace"``)."""
    return parse_qsl(raw.decode(errors=errors), keep_blank_values=True, errors=errors)


async def _multipart(headers: Headers, raw: bytes) -> list[tuple[str, str]]:
    async def stream() -> AsyncGenerator[bytes, None]:
        yield raw

    try:
        form = await MultiPartParser(headers, stream(), max_files=1).parse()
    except MultiPartException as exc:
        raise Refused(400, f"The multipart/form-data body cannot be read: {exc.message}") from None
    pairs: list[tuple[str, str]] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            raise Refused(400, FILE_PART)
        pairs.append((name, value))
    return pairs


def _example(status: str, message: str) -> dict[str, Any]:
    return {"value": {"status": status, "message": message}}


def _xml_example(status: str, message: str) -> dict[str, Any]:
    return {"value": legacy.xml({"status": status, "message": message})}


def _parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


_PARAMETERS = [
    _parameter("api_key", "The account's API key: it alone names the account."),
    _parameter("campaign_name", "One of the account's outbound campaigns."),
    _parameter("PhoneNumber", "`+` optional, then 3 to 16 digits."),
    _parameter("Name", "The lead's name."),
    _parameter("action", "`start` or `stop` (any case): applied once the lead is stored."),
    _parameter("checkDuplicate", "`true` (any case): refuse a number the campaign holds."),
    _parameter("Priority", "0 to 99; 1 when absent."),
    _parameter("ExpiryDate", "`yyyy-MM-dd HH:mm:ss` or `yyyy-MM-dd`, account's time zone."),
    _parameter("agentId", "Agent-wise campaigns (also `AgentID`)."),
    _parameter("skill", "Skill-wise campaigns."),
    _parameter("format", "`json` for JSON answers; XML otherwise."),
]
_FORM_SCHEMA = {
    "type": "object",
    "description": "The same parameters as the query string (the form wins over it); any"
    " other field is an extra column of the lead.",
    "properties": {p["name"]: {"type": "string"} for p in _PARAMETERS},
    "additionalProperties": {"type": "string"},
}
_OUTCOMES = {
    "stored": ("SUCCESS", "Successfully Updated"),
    "started": ("SUCCESS", "Successfully Updated, Progressive was started"),
    "duplicate": ("SUCCESS", "Number Already Exist"),
    "no_user": ("FAIL", "No User Found"),
    "campaign": ("FAIL", "Campaign Name is Invalid"),
    "bad_phone": ("FAIL", "Phone Number is Invalid!"),
}


def _error(description: str, message: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/xml": {"example": legacy.xml(false_body(message))},
            "application/json": {"example": false_body(message)},
        },
    }


def _operation(method: str) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "tags": ["compatibility"],
        "summary": "Add a lead (CloudAgent's older addCamapaignData API; the typo is its path)",
        "description": 'See docs/api.md, "The older add endpoint", for the checks in order'
        " and every answer. Parameters may also follow the path as segments"
        " (`.../addCamapaignData/api_key/KEY/campaign_name/NAME/PhoneNumber/N/format/json`),"
        " which win over the form and the query string; `addCamapaignData.json` asks for JSON.",
        "operationId": f"legacyAddCampaignData{method.title()}",
        "parameters": _PARAMETERS,
        "responses": {
            "200": {
                "description": "Every documented outcome, success or not",
                "content": {
                    "application/xml": {
                        "schema": {"type": "string"},
                        "examples": {k: _xml_example(*v) for k, v in _OUTCOMES.items()},
                    },
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "status": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        },
                        "examples": {k: _example(*v) for k, v in _OUTCOMES.items()},
                    },
                },
            },
            "400": _error("A parameter is not UTF-8 or holds a NUL character", NOT_UTF8),
            "405": _error("Another method than GET or POST", NOT_ALLOWED),
            "413": _error(
                "The body, an extra column or a value is over its limit",
                "The request body is larger than 65536 bytes.",
            ),
            "429": _error(
                "Over AddCampaignData's budget (the account's, or the address's for unknown"
                " keys); see Retry-After",
                "Too many requests for this account or address; retry after 12 seconds.",
            ),
            "503": _error(
                "The database is unavailable; nothing was stored",
                "The database is unavailable; nothing was stored. Try again shortly.",
            ),
        },
    }
    if method == "post":
        operation["requestBody"] = {
            "required": False,
            "content": {FORM: {"schema": _FORM_SCHEMA}, MULTIPART: {"schema": _FORM_SCHEMA}},
        }
    return operation


OPENAPI_PATHS: dict[str, Any] = {
    PREFIX: {"get": _operation("get"), "post": _operation("post")},
}
