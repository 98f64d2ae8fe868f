"""Uploading a CSV or XLSX file into a campaign, and following its import. HTTP only.

The upload goes through the same code as ``POST /v1/campaigns/{c}/imports``
(``imports.upload_routes``: the multipart body streamed to disk, the file checked, then
``imports.service.queue_file``); the process's import runner adds the rows. The import's
page polls its progress; its rejected rows download as the same ``failed.csv``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.responses import Response

from dialbase.campaigns.models import Direction
from dialbase.console import service as reads
from dialbase.console.campaign_page import show_campaign
from dialbase.console.session import CSRF_FAILED, Forbidden, same_token
from dialbase.console.views import PREFIX, console_of, redirect, render, signed_in
from dialbase.db import session_scope
from dialbase.errors import Invalid, NotFound
from dialbase.imports import service as imports
from dialbase.imports.models import ImportStatus
from dialbase.imports.upload_routes import (
    UPLOADS,
    PayloadTooLarge,
    UnsupportedMediaType,
    _receive,
    check_upload,
    max_file_bytes,
)
from dialbase.services import services_of

router = APIRouter(prefix=PREFIX, include_in_schema=False)
MAX_IMPORT_ID = 2**63 - 1


@router.post("/campaigns/{campaign_id:int}/imports")
async def upload(campaign_id: int, request: Request) -> Response:
    """The file is received first (to disk), then the form's CSRF token checked; a refused
    upload leaves no file and no import behind, and the campaign's page says why next to
    the file field."""
    try:
        import_id = await _upload(campaign_id, request)
    except (Invalid, UnsupportedMediaType, PayloadTooLarge) as exc:
        return await show_campaign(request, campaign_id, {"file": exc.message})
    console_of(request).changed(campaign_id)
    return redirect(f"{PREFIX}/imports/{import_id}")


async def _upload(campaign_id: int, request: Request) -> int:
    services = services_of(request)
    async with signed_in(request, read_only=True) as page:
        campaign = await reads.own_campaign(page.session, page.account, campaign_id)
    if campaign.direction != Direction.OUTBOUND:
        raise Invalid(f"Campaign {campaign.name!r} is not outbound: it cannot import leads.")
    folder = Path(services.settings.import_dir).resolve() / UPLOADS
    received = await _receive(request, folder, max_file_bytes(services.settings))
    try:
        token = received.fields.get("csrf_token", bytearray()).decode(errors="replace")
        if not same_token(page.csrf_token, token):
            raise Forbidden(CSRF_FAILED)
        check_duplicate, start = received.check_fields()
        file_format = received.file_format or "csv"
        header = await asyncio.to_thread(check_upload, received.path, file_format)
        async with session_scope(services.sessionmaker) as session:
            import_id = await imports.queue_file(
                session,
                imports.ImportRequest(
                    account_id=page.account.id,
                    campaign_id=campaign.id,
                    source="file",
                    columns=header,
                    check_duplicate=check_duplicate,
                    start=start,
                    public_url=str(request.base_url).rstrip("/"),
                ),
                received.path,
                file_format,
            )
    except BaseException:
        received.path.unlink(missing_ok=True)
        raise
    return import_id


def _checked(import_id: int) -> int:
    if import_id > MAX_IMPORT_ID:
        raise NotFound(reads.NO_IMPORT)
    return import_id


async def _import_context(request: Request, import_id: int) -> dict[str, object]:
    now = services_of(request).dialer.clock()
    async with signed_in(request, read_only=True) as page:
        record = await reads.own_import(page.session, page.account, _checked(import_id))
        campaign = await reads.own_campaign(page.session, page.account, record.campaign_id)
        finished = record.status == ImportStatus.DONE.value
        rejected = await reads.rejected_rows(page.session, record) if finished else []
    return {
        "page": page,
        "record": record,
        "campaign": campaign,
        "finished": finished,
        "rejected": rejected,
        "rate": reads.rows_per_second(record, now),
        "shown_max": reads.REJECTED_SHOWN,
    }


@router.get("/imports/{import_id:int}")
async def import_page(import_id: int, request: Request) -> Response:
    return render(request, "import.html", await _import_context(request, import_id))


@router.get("/imports/{import_id:int}/progress")
async def import_progress(import_id: int, request: Request) -> Response:
    """The progress fragment (htmx polls it until the import finished)."""
    return render(request, "_import_progress.html", await _import_context(request, import_id))


@router.get("/imports/{import_id:int}/failed.csv")
async def failed_csv(import_id: int, request: Request) -> Response:
    async with signed_in(request, read_only=True) as page:
        text = await imports.failed_csv(page.session, page.account.id, _checked(import_id))
    if text is None:
        raise NotFound(reads.NO_IMPORT)
    return Response(
        text.encode(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-{import_id}-failed.csv"'},
    )
