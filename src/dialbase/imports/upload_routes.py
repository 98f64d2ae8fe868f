"""``POST /v1/campaigns/{campaign}/imports``: a CSV or XLSX file of leads, queued for import.

HTTP in, HTTP out. Authenticated with HTTP Basic like the rest of ``/v1``; errors answer
problem+json. The body is ``multipart/form-data`` with the file in a part named ``file``
and two optional fields, ``checkDuplicate`` (``true`` / ``false``) and ``action``
(``start``). It is never held in memory: the file part is written, as it arrives, to a new
file under ``settings.import_dir/uploads`` (at most ``max_import_file_bytes`` for the whole
body), then checked (the header names a PhoneNumber column; a CSV file is read through
once, so text that is not UTF-8 or a broken line is refused now, not halfway through the
import), then queued (``imports.service.queue_file``) and answered 202 once committed. A
request that fails at any step leaves no file and no import behind; the runner deletes the
file once the import is done.
"""

from __future__ import annotations

import asyncio
import copy
import errno
import os
import uuid
from http import HTTPStatus
from pathlib import Path
from typing import IO, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from dialbase.campaigns.models import Direction
from dialbase.campaigns.service import find_campaign
from dialbase.compat.directory import AccountInfo
from dialbase.config import Settings
from dialbase.db import session_scope
from dialbase.dialer.routes import PREFIX, Credentials, caller
from dialbase.dialer.schemas import problem_responses
from dialbase.errors import DialbaseError, Invalid, NotFound, ServiceUnavailable
from dialbase.imports.files import UPLOADS, FileError, check_file, format_of
from dialbase.imports.service import ImportRequest, queue_file
from dialbase.services import services_of

DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024  # a million leads with a few extra columns
MAX_FIELD_BYTES = 1024  # checkDuplicate, action
MAX_PARTS = 16
MULTIPART_HELP = "send multipart/form-data with the file in a part named 'file'"
_NOT_CSV = (
    "the file is neither CSV nor XLSX: name it .csv or .xlsx, or send it as text/csv or"
    " the XLSX media type"
)

router = APIRouter(prefix=PREFIX, tags=["imports"])


class PayloadTooLarge(DialbaseError):
    status = 413


class UnsupportedMediaType(DialbaseError):
    status = 415


def max_file_bytes(settings: Settings) -> int:
    """The largest upload body (``DIALBASE_MAX_IMPORT_FILE_BYTES`` once config has it)."""
    value = getattr(settings, "max_import_file_bytes", None)
    return value if isinstance(value, int) and value > 0 else DEFAULT_MAX_FILE_BYTES


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "CSV (UTF-8) or XLSX; the first row names the"
                            " columns, one of them PhoneNumber.",
                        },
                        "checkDuplicate": {
                            "type": "string",
                            "enum": ["true", "false"],
                            "description": "true: a number already in the campaign, or"
                            " earlier in the file, is not added again.",
                        },
                        "action": {
                            "type": "string",
                            "enum": ["start"],
                            "description": "start: start the campaign after the last row.",
                        },
                    },
                }
            }
        },
    },
    "responses": {
        "202": {
            "description": "Queued: follow Location (GET /v1/imports/{id}) for its results.",
            "content": {
                "application/json": {
                    "example": {"transactionId": "42", "status": "queued"},
                }
            },
        }
    },
}


def _problem(status: int, description: str, detail: str) -> dict[str, Any]:
    """A problem+json response entry shaped like ``problem_responses``'s."""
    entry = copy.deepcopy(problem_responses(422)[422])
    example = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status}
    entry["description"] = description
    entry["content"]["application/problem+json"]["example"] = {**example, "detail": detail}
    return entry


def _too_large(limit: int) -> str:
    return f"the upload is larger than {limit} bytes ({limit // (1024 * 1024)} MiB)"


@router.post(
    "/campaigns/{campaign:path}/imports",
    status_code=202,
    responses={
        **problem_responses(400, 401, 404, 422, 429, 503),
        413: _problem(413, "The body is larger than the upload limit", _too_large(256 << 20)),
        415: _problem(415, "Not multipart/form-data, or a file neither CSV nor XLSX", _NOT_CSV),
    },
    openapi_extra=_UPLOAD_BODY,
)
async def upload_import(campaign: str, request: Request, credentials: Credentials) -> JSONResponse:
    """Upload a CSV or XLSX file of leads; its rows are added afterwards, in file order."""
    account = await caller(request, credentials)
    services = services_of(request)
    campaign_id = await _outbound_campaign(request, account, campaign)
    limit = max_file_bytes(services.settings)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(_too_large(limit))
    upload = await _receive(request, Path(services.settings.import_dir).resolve() / UPLOADS, limit)
    file_format = upload.file_format or "csv"  # never None once received
    try:
        fields = upload.check_fields()
        header = await asyncio.to_thread(check_upload, upload.path, file_format)
        async with session_scope(services.sessionmaker) as session:
            import_id = await queue_file(
                session,
                ImportRequest(
                    account_id=account.id,
                    campaign_id=campaign_id,
                    source="file",
                    columns=header,
                    check_duplicate=fields[0],
                    start=fields[1],
                    public_url=str(request.base_url).rstrip("/"),
                ),
                upload.path,
                file_format,
            )
    except BaseException:
        upload.path.unlink(missing_ok=True)
        raise
    location = f"{PREFIX}/imports/{import_id}"
    return JSONResponse(
        {"transactionId": str(import_id), "status": "queued"},
        status_code=202,
        headers={"Location": location},
    )


async def _outbound_campaign(request: Request, account: AccountInfo, name: str) -> int:
    sessions = services_of(request).sessionmaker
    async with session_scope(sessions, read_only=True) as session:
        found = None if "\x00" in name else await find_campaign(session, account.id, name.strip())
        if found is None:
            raise NotFound(f"account {account.username!r} has no campaign named {name!r}")
        if found.direction != Direction.OUTBOUND:
            raise Invalid(f"campaign {found.name!r} is not outbound: it cannot import leads")
        return found.id


def check_upload(path: Path, file_format: str) -> list[str]:
    """The header of a staged upload that can be imported (``Invalid`` if not)."""
    try:
        return check_file(path, file_format)
    except FileError as exc:
        raise Invalid(f"file: {exc.message}") from None


async def _receive(request: Request, folder: Path, limit: int) -> _Upload:
    """The request's multipart body read as it arrives: the file part written under
    ``folder``, the small fields kept. Nothing is left on disk if this fails."""
    content_type, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise UnsupportedMediaType(f"the body is not multipart/form-data: {MULTIPART_HELP}")
    upload = _Upload(folder, limit)
    parser = MultipartParser(boundary, upload.callbacks())
    try:
        async for chunk in request.stream():
            upload.received += len(chunk)
            if upload.received > limit:
                raise PayloadTooLarge(_too_large(limit))
            parser.write(chunk)
        parser.finalize()
        upload.finish()
    except ClientDisconnect:
        upload.discard()
        raise
    except DialbaseError:
        upload.discard()
        raise
    except OSError as exc:
        upload.discard()
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ServiceUnavailable("no room to store the upload; nothing was queued") from None
        raise
    except Exception as exc:  # python-multipart's parse errors: a malformed body
        upload.discard()
        raise Invalid(f"the multipart body is malformed ({exc}): {MULTIPART_HELP}") from None
    if upload.file_format is None:
        raise Invalid(f"no file: {MULTIPART_HELP}")
    return upload


class _Upload:
    """What the multipart parser has seen: the file part (streamed to disk) and fields."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = folder
        self.limit = limit
        self.received = 0
        self.parts = 0
        self.fields: dict[str, bytearray] = {}
        self.file_format: str | None = None
        self.path = folder / f"{uuid.uuid4().hex}.part"
        self._handle: IO[bytes] | None = None
        self._headers: dict[str, str] = {}
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._target: bytearray | IO[bytes] | None = None

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise Invalid(f"more than {MAX_PARTS} parts: {MULTIPART_HELP}")
        self._headers = {}
        self._target = None

    def _header_end(self) -> None:
        name = self._header_field.decode("latin-1").strip().lower()
        self._headers[name] = self._header_value.decode("latin-1")
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition"))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name != "file":
            self._target = self.fields.setdefault(name, bytearray())
            return
        if self.file_format is not None:
            raise Invalid(f"more than one file: {MULTIPART_HELP}")
        filename = options.get(b"filename")
        fmt = format_of(
            filename.decode("utf-8", "replace") if filename is not None else None,
            self._headers.get("content-type"),
        )
        if fmt is None:
            raise UnsupportedMediaType(_NOT_CSV)
        self.file_format = fmt
        self.folder.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("xb")
        self._target = self._handle

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        target = self._target
        if isinstance(target, bytearray):
            if len(target) + end - start > MAX_FIELD_BYTES:
                raise Invalid(f"a form field is longer than {MAX_FIELD_BYTES} bytes")
            target.extend(data[start:end])
        elif target is not None:
            target.write(data[start:end])

    def _part_end(self) -> None:
        if self._target is self._handle and self._handle is not None:
            self._handle.flush()

    def finish(self) -> None:
        """The file complete on disk under its final name (``<id>.csv`` / ``<id>.xlsx``)."""
        if self._handle is None:
            return
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        final = self.path.with_suffix("." + (self.file_format or "csv"))
        self.path.rename(final)
        self.path = final

    def discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self.path.unlink(missing_ok=True)

    def check_fields(self) -> tuple[bool, bool]:
        """``checkDuplicate`` and ``action`` read: (check duplicates, start afterwards)."""
        duplicate = self._text("checkDuplicate").lower()
        if duplicate not in ("", "true", "false"):
            raise Invalid("checkDuplicate: true or false")
        action = self._text("action").lower()
        if action not in ("", "start"):
            raise Invalid("action: start, or leave it out")
        return duplicate == "true", action == "start"

    def _text(self, name: str) -> str:
        for key, value in self.fields.items():
            if key.lower() == name.lower():
                try:
                    return value.decode().strip()
                except UnicodeDecodeError:
                    raise Invalid(f"{name}: not UTF-8 text") from None
        return ""
