"""``/v1/dnc``: the account's do-not-call list. HTTP in, HTTP out, nothing else.

Authenticated like the dialer API (HTTP Basic, ``dialer.routes.account_scope``); every
error answers RFC 9457 problem details (``dialbase.responses``). A number in a path is
read like any other (``dnc.service.listed_form``): ``+919876543210``, ``09876543210``
and ``9876543210`` name one entry when the account's default country is IN.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from dialbase.dialer.routes import PREFIX, Credentials, account_scope
from dialbase.dialer.schemas import problem_responses
from dialbase.dnc import service
from dialbase.dnc.schemas import DncEntryOut, DncPage, DncPut
from dialbase.errors import Invalid

DEFAULT_PAGE = 100
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BAD_CURSOR = "cursor: not a cursor this API returned (pass nextCursor as it came)"


def _problem(status: int, description: str, detail: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entry of one problem status, with this API's words."""
    entry = copy.deepcopy(problem_responses(status))
    entry[status]["description"] = description
    entry[status]["content"]["application/problem+json"]["example"]["detail"] = detail
    return entry


_ERRORS = problem_responses(400, 401, 422, 429, 500, 503)
_NOT_LISTED = _problem(
    404,
    "The number is not on the list (or its entry expired)",
    "+919876543210 is not on the do-not-call list",
)
_CHANGING = _problem(
    409,
    "Other requests kept adding and removing the number meanwhile; try again",
    "+919876543210 is being changed by other requests right now; try again",
)
router = APIRouter(prefix=PREFIX, tags=["do-not-call"], responses=_ERRORS)


def encode_cursor(number: str) -> str:
    """The cursor that continues after ``number``: urlsafe base64, unpadded."""
    return base64.urlsafe_b64encode(number.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    if not _CURSOR.fullmatch(cursor):
        raise Invalid(_BAD_CURSOR)
    try:
        after = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Invalid(_BAD_CURSOR) from None
    if not after or "\x00" in after:
        raise Invalid(_BAD_CURSOR)
    return after


@router.put(
    "/dnc/{number}",
    response_model=DncEntryOut,
    responses={
        201: {"model": DncEntryOut, "description": "Listed: the number was not on the list"},
        **_CHANGING,
    },
)
async def put_number(
    number: str,
    request: Request,
    response: Response,
    credentials: Credentials,
    body: DncPut | None = None,
) -> DncEntryOut:
    """Put the number on the list (201), or replace its expiry and note (200).

    The body may be left out: no expiry, no note."""
    body = body or DncPut()
    async with account_scope(request, credentials) as (session, account):
        entry, created = await service.put_entry(
            session, account, number, body.expires_at, body.note
        )
        shown = DncEntryOut.of(entry)
    if created:
        response.status_code = 201
    return shown


@router.delete("/dnc/{number}", status_code=204, response_class=Response, responses=_NOT_LISTED)
async def delete_number(number: str, request: Request, credentials: Credentials) -> Response:
    """Take the number off the list."""
    async with account_scope(request, credentials) as (session, account):
        if not await service.remove_entry(session, account, number):
            raise service.not_listed(account, number)
    return Response(status_code=204)


@router.get("/dnc/{number}", response_model=DncEntryOut, responses=_NOT_LISTED)
async def get_number(number: str, request: Request, credentials: Credentials) -> DncEntryOut:
    """The number's entry, if it is on the list."""
    async with account_scope(request, credentials, read_only=True) as (session, account):
        return DncEntryOut.of(await service.get_entry(session, account, number))


@router.get("/dnc", response_model=DncPage)
async def list_numbers(
    request: Request,
    credentials: Credentials,
    cursor: Annotated[
        str | None, Query(description="`nextCursor` of the previous page; none: the first.")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=service.MAX_PAGE, description="Most entries on this page.")
    ] = DEFAULT_PAGE,
) -> DncPage:
    """The entries in force, ordered by number, a page at a time."""
    async with account_scope(request, credentials, read_only=True) as (session, account):
        after = decode_cursor(cursor) if cursor is not None else None
        page = await service.list_page(session, account.id, after, limit)
        entries = [DncEntryOut.of(entry) for entry in page.entries]
    next_cursor = encode_cursor(page.next_after) if page.next_after is not None else None
    return DncPage(entries=entries, next_cursor=next_cursor)
