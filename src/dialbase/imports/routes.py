"""``/v1/imports``: an import's results. HTTP in, HTTP out, nothing else.

HTTP Basic (user name, API key) as the rest of ``/v1``; an account sees its own imports
only: any other transaction id is 404, whether it exists or not.
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from dialbase.db import session_scope
from dialbase.dialer.routes import Credentials, caller
from dialbase.dialer.schemas import problem_responses
from dialbase.errors import NotFound
from dialbase.imports import service
from dialbase.imports.schemas import ImportOut
from dialbase.services import services_of

NO_IMPORT = "no import with this transaction id in this account"
MAX_ID = 2**63 - 1

router = APIRouter(
    prefix="/v1/imports",
    tags=["imports"],
    responses=problem_responses(400, 401, 404, 422, 429, 500, 503),
)


def _import_id(transaction_id: str) -> int:
    if not transaction_id.isascii() or not transaction_id.isdigit():
        raise NotFound(NO_IMPORT)
    value = int(transaction_id)
    if value > MAX_ID:
        raise NotFound(NO_IMPORT)
    return value


@router.get("/{transaction_id}", responses={200: {"model": ImportOut}})
async def get_import(
    transaction_id: str,
    request: Request,
    credentials: Credentials,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=0, le=service.MAX_VIEW_ROWS)] = service.MAX_VIEW_ROWS,
) -> Response:
    """An import's counts and each row's result (``offset``/``limit`` page the rows)."""
    account = await caller(request, credentials)
    import_id = _import_id(transaction_id)
    sessions = services_of(request).sessionmaker
    async with session_scope(sessions, read_only=True) as session:
        view = await service.import_view(session, account.id, import_id, offset=offset, limit=limit)
    if view is None:
        raise NotFound(NO_IMPORT)
    return Response(orjson.dumps(view), media_type="application/json")


@router.get(
    "/{transaction_id}/failed.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "rejected rows and reasons"}},
)
async def get_failed_csv(
    transaction_id: str, request: Request, credentials: Credentials
) -> Response:
    """The import's rejected rows: its columns as given, then ``reason``."""
    account = await caller(request, credentials)
    import_id = _import_id(transaction_id)
    sessions = services_of(request).sessionmaker
    async with session_scope(sessions, read_only=True) as session:
        text = await service.failed_csv(session, account.id, import_id)
    if text is None:
        raise NotFound(NO_IMPORT)
    return Response(
        text.encode(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-{import_id}-failed.csv"'},
    )
