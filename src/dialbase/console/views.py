"""What every console route shares: the worker's console state, templates, the signed-in
account's transaction, CSRF checks, form fields, and the console's error pages.

HTTP in, HTTP out; the rules stay in the services. ``error_page`` is the console family's
one place that turns an error into a response (``dialbase.responses`` hands it every
failure under ``/console``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from dialbase.accounts.models import Account
from dialbase.console import service
from dialbase.console.cache import Cached
from dialbase.console.session import (
    COOKIE,
    CSRF_FAILED,
    Forbidden,
    SessionStore,
    SignedIn,
    SignInNeeded,
    same_token,
)
from dialbase.db import session_scope
from dialbase.dialer.explain import Forecast
from dialbase.errors import DialbaseError, Invalid
from dialbase.services import Services, services_of

PREFIX = "/console"
SIGN_IN = f"{PREFIX}/sign-in"
COUNTS_MAX_AGE = 1.0  # seconds: the live counts' cache
CHART_MAX_AGE = 5.0
FORECAST_MAX_AGE = 30.0
MAX_FIELD_CHARS = 2000

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


def _local(value: datetime | None, zone: str = "UTC") -> str:
    if value is None:
        return "—"
    return value.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


templates.env.filters["local"] = _local


@dataclass
class Console:
    """One per worker: the session store and the caches of counts, chart and forecast."""

    sessions: SessionStore
    counts: Cached[int, dict[str, int]]
    chart: Cached[int, list[service.HourBar]]
    forecast: Cached[int, Forecast]

    @classmethod
    def of(cls, services: Services) -> Console:
        sessions = services.sessionmaker
        clock = services.dialer.clock
        return cls(
            sessions=SessionStore(
                sessions, services.auth.tokens, services.settings.console_idle_minutes
            ),
            counts=Cached(lambda c: service.state_counts(sessions, c), COUNTS_MAX_AGE),
            chart=Cached(lambda c: service.attempts_by_hour(sessions, c, clock()), CHART_MAX_AGE),
            forecast=Cached(
                lambda c: service.campaign_forecast(sessions, c, clock()), FORECAST_MAX_AGE
            ),
        )

    def changed(self, campaign_id: int) -> None:
        """The user changed the campaign: the next page shows fresh counts."""
        self.counts.forget(campaign_id)
        self.forecast.forget(campaign_id)


def console_of(request: Request) -> Console:
    """The worker's console state, made on first use (no await: no race)."""
    state = request.app.state
    console: Console | None = getattr(state, "console", None)
    if console is None:
        console = state.console = Console.of(services_of(request))
    return console


@dataclass
class Page:
    """What a signed-in request has: its transaction, account and CSRF token."""

    session: AsyncSession
    account: Account
    csrf_token: str
    signed_in: SignedIn


@contextlib.asynccontextmanager
async def signed_in(request: Request, *, read_only: bool = False) -> AsyncIterator[Page]:
    """One transaction for a signed-in request (``SignInNeeded`` without a session)."""
    found = await console_of(request).sessions.check(request.cookies.get(COOKIE))
    async with session_scope(services_of(request).sessionmaker, read_only=read_only) as session:
        account = await session.get(Account, found.account_id)
        if account is None:
            raise SignInNeeded("Your account no longer exists.")
        yield Page(session, account, found.csrf_token, found)


async def form_of(request: Request, page: Page | None = None) -> FormData:
    """The request's form, its CSRF token checked against the session's."""
    form = await request.form()
    if page is not None:
        token = form.get("csrf_token")
        if not same_token(page.csrf_token, token if isinstance(token, str) else None):
            raise Forbidden(CSRF_FAILED)
    return form


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    if len(value) > MAX_FIELD_CHARS or "\x00" in value:
        raise Invalid(f"{name}: at most {MAX_FIELD_CHARS} characters, no NUL characters.")
    return value.strip()


def names(form: FormData, name: str) -> list[str]:
    """A comma-separated list field."""
    return [part.strip() for part in text(form, name).split(",") if part.strip()]


def whole_number(value: str, label: str) -> int:
    if not value.lstrip("-").isdigit() or len(value) > 12:
        raise Invalid(f"{label}: a whole number.")
    return int(value)


class FormErrors(Exception):
    """Raised inside a form's transaction (which rolls back): the form is shown again
    with each message next to its field. That page answers 200: a browser reports every
    answer of 400 or more in its console as a failed resource, and the page is the
    form's normal next step, not a failure of the request."""

    def __init__(self, errors: dict[str, str], values: dict[str, str]) -> None:
        super().__init__("the form has errors")
        self.errors = errors
        self.values = values


def collect(errors: dict[str, str], field: str, check: Callable[[], Any]) -> Any:
    """Run one field's check; its ``Invalid`` message is kept for that field."""
    try:
        return check()
    except Invalid as exc:
        errors[field] = exc.message
        return None


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    page: Page | None = context.get("page")
    values = {"request": request, "prefix": PREFIX, "now": datetime.now(UTC), **context}
    if page is not None:
        values.update(account=page.account, csrf_token=page.csrf_token, zone=page.account.timezone)
    response = templates.TemplateResponse(request, template, values, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def error_page(request: Request, error: DialbaseError, headers: dict[str, str]) -> Response:
    """The console's answer to a failure: the sign-in page, or a page that says it."""
    htmx = request.headers.get("hx-request") == "true"
    if isinstance(error, SignInNeeded):
        if htmx:
            return Response(status_code=204, headers={"HX-Redirect": SIGN_IN})
        response = redirect(SIGN_IN)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response
    context = {"title": error.title, "message": error.message, "status": error.status}
    response = templates.TemplateResponse(
        request,
        "_error.html" if htmx else "error.html",
        {"request": request, "prefix": PREFIX, **context},
        status_code=error.status,
    )
    response.headers.update({k: v for k, v in headers.items() if k != "WWW-Authenticate"})
    response.headers["Cache-Control"] = "no-store"
    return response
