"""``/console/dnc`` (the do-not-call list) and ``/console/account`` (settings, key). HTTP only."""

from __future__ import annotations

import asyncio
import csv
import tempfile
from typing import IO, Annotated

from fastapi import APIRouter, Query, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from dialbase.accounts import service as accounts
from dialbase.accounts.models import AuthMode
from dialbase.console.views import (
    PREFIX,
    FormErrors,
    collect,
    form_of,
    redirect,
    render,
    signed_in,
    text,
    whole_number,
)
from dialbase.dnc import service as dnc
from dialbase.dnc.cli import _Reader
from dialbase.errors import Conflict, Invalid, NotFound

router = APIRouter(prefix=PREFIX, include_in_schema=False)
DNC_PAGE = 50
MAX_DNC_FILE_BYTES = 16 * 1024 * 1024
SHOWN_INVALID = 20


# The do-not-call list ------------------------------------------------------------------


async def _dnc_page(
    request: Request,
    q: str = "",
    after: str = "",
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    notice: str | None = None,
) -> Response:
    found: list[dnc.DncEntry] = []
    next_after = None
    async with signed_in(request, read_only=True) as page:
        if q:
            try:
                found = [await dnc.get_entry(page.session, page.account, q)]
            except (Invalid, NotFound) as exc:
                errors = {**(errors or {}), "q": exc.message}
        else:
            listing = await dnc.list_page(page.session, page.account.id, after or None, DNC_PAGE)
            found, next_after = listing.entries, listing.next_after
    context = {
        "page": page,
        "entries": found,
        "q": q,
        "next_after": next_after,
        "errors": errors or {},
        "values": values or {},
        "notice": notice,
    }
    return render(request, "dnc.html", context)


@router.get("/dnc")
async def dnc_page(
    request: Request,
    q: Annotated[str, Query(max_length=40)] = "",
    after: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    return await _dnc_page(request, q.strip(), after.strip())


@router.post("/dnc")
async def add_number(request: Request) -> Response:
    try:
        async with signed_in(request) as page:
            form = await form_of(request, page)
            values = {"number": text(form, "number"), "note": text(form, "note")}
            try:
                entry, created = await dnc.put_entry(
                    page.session, page.account, values["number"], None, values["note"] or None
                )
            except (Invalid, Conflict) as exc:
                field = "note" if exc.message.lower().startswith("note") else "number"
                raise FormErrors({field: exc.message}, values) from None
            number = entry.number
    except FormErrors as exc:
        return await _dnc_page(request, errors=exc.errors, values=exc.values)
    notice = f"{number} is on the list." if created else f"{number} was listed already; kept."
    return await _dnc_page(request, notice=notice)


@router.post("/dnc/remove")
async def remove_number(request: Request) -> Response:
    async with signed_in(request) as page:
        form = await form_of(request, page)
        number = text(form, "number")
        if not await dnc.remove_entry(page.session, page.account, number):
            raise dnc.not_listed(page.account, number)
    return await _dnc_page(request, notice=f"{number} is off the list.")


@router.post("/dnc/import")
async def import_numbers(request: Request) -> Response:
    """A CSV or text file of numbers, read as ``dialbase dnc import`` reads it."""
    with tempfile.TemporaryFile() as staged:
        try:
            async with signed_in(request) as page:
                form = await form_of(request, page)
                upload = form.get("file")
                if not isinstance(upload, UploadFile) or not upload.filename:
                    raise FormErrors({"file": "Choose a file of numbers."}, {})
                size = await asyncio.to_thread(_copy, upload, staged)
                if size > MAX_DNC_FILE_BYTES:
                    limit = MAX_DNC_FILE_BYTES // (1024 * 1024)
                    raise FormErrors({"file": f"The file is larger than {limit} MiB."}, {})
                reader = _Reader(staged)  # type: ignore[arg-type]
                invalid: list[str] = []
                try:
                    counts = await dnc.import_numbers(
                        page.session,
                        page.account,
                        reader.numbers(),
                        on_invalid=lambda value: _note(invalid, reader.line, value),
                    )
                except csv.Error as exc:
                    raise FormErrors({"file": f"Line {reader.line}: {exc}"}, {}) from None
        except FormErrors as exc:
            return await _dnc_page(request, errors=exc.errors)
    notice = (
        f"Imported: {counts.added} added, {counts.already_listed} already listed,"
        f" {counts.invalid} not phone numbers."
    )
    if invalid:
        notice += " " + "; ".join(invalid)
    return await _dnc_page(request, notice=notice)


def _copy(upload: UploadFile, staged: IO[bytes]) -> int:
    upload.file.seek(0)
    size = 0
    while chunk := upload.file.read(1 << 16):
        size += len(chunk)
        if size > MAX_DNC_FILE_BYTES:
            break
        staged.write(chunk)
    staged.seek(0)
    return size


def _note(invalid: list[str], line: int, value: str) -> None:
    if len(invalid) < SHOWN_INVALID:
        shown = value if len(value) <= 40 else value[:40] + "..."
        invalid.append(f"line {line}: not a phone number: {shown!r}")


# The account ---------------------------------------------------------------------------

ACCOUNT_FIELDS = ("timezone", "auth_mode", "rate_limit", "default_country")


async def _account_page(
    request: Request,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    new_key: str | None = None,
    notice: str | None = None,
) -> Response:
    async with signed_in(request, read_only=True) as page:
        account = page.account
    shown = values or {
        "timezone": account.timezone,
        "auth_mode": account.auth_mode,
        "rate_limit": str(account.rate_limit),
        "default_country": account.default_country or "",
    }
    context = {
        "page": page,
        "values": shown,
        "errors": errors or {},
        "auth_modes": [m.value for m in AuthMode],
        "new_key": new_key,
        "notice": notice,
    }
    return render(request, "account.html", context)


@router.get("/account")
async def account_page(request: Request) -> Response:
    return await _account_page(request)


@router.post("/account")
async def save_account(request: Request) -> Response:
    try:
        async with signed_in(request) as page:
            form = await form_of(request, page)
            values = {k: text(form, k) for k in ACCOUNT_FIELDS}
            errors: dict[str, str] = {}
            collect(errors, "timezone", lambda: accounts.check_timezone(values["timezone"]))
            collect(errors, "auth_mode", lambda: accounts.check_auth_mode(values["auth_mode"]))
            limit = collect(
                errors,
                "rate_limit",
                lambda: accounts.check_rate_limit(whole_number(values["rate_limit"], "Rate limit")),
            )
            collect(
                errors,
                "default_country",
                lambda: accounts.check_default_country(values["default_country"]),
            )
            if errors:
                raise FormErrors(errors, values)
            await accounts.update_account(
                page.session,
                page.account.username,
                auth_mode=values["auth_mode"],
                timezone=values["timezone"],
                rate_limit=limit,
                default_country=values["default_country"],
            )
    except FormErrors as exc:
        return await _account_page(request, exc.values, exc.errors)
    return await _account_page(request, notice="Saved.")


@router.post("/account/key")
async def rotate_key(request: Request) -> Response:
    """A new API key, shown once on the answer's page; the old one stops working at once."""
    async with signed_in(request) as page:
        await form_of(request, page)
        _, key = await accounts.rotate_api_key(page.session, page.account.username)
    return await _account_page(request, new_key=key)


@router.get("/account/key")
async def rotate_key_page() -> Response:
    return redirect(f"{PREFIX}/account")
