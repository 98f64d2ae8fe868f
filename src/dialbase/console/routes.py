"""``/console``: signing in and out, the campaigns and a campaign's page. HTTP in, HTTP out.

Every page but the sign-in form needs a session (``views.signed_in``); every form carries
the session's CSRF token. ``install`` mounts the console (its routers and its static
files) on the application.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from dialbase.campaigns import service as campaigns
from dialbase.campaigns.models import DialType, Routing
from dialbase.console import account_routes, lead_routes, upload_routes
from dialbase.console import service as reads
from dialbase.console.campaign_page import show_campaign
from dialbase.console.session import (
    COOKIE,
    CSRF_FAILED,
    SIGN_IN_COOKIE,
    Forbidden,
    end,
    end_expired,
)
from dialbase.console.views import (
    PREFIX,
    SIGN_IN,
    FormErrors,
    collect,
    console_of,
    form_of,
    names,
    redirect,
    render,
    signed_in,
    text,
    whole_number,
)
from dialbase.db import session_scope
from dialbase.dialer.service import set_campaign_running
from dialbase.errors import Conflict, Invalid
from dialbase.services import services_of

SIGN_IN_FAILED = "Wrong user name or API key."
TOO_MANY = "Too many failed sign-ins from this address: try again in {} seconds."

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def install(api: FastAPI) -> None:
    static = StaticFiles(packages=[("dialbase.console", "static")])
    api.mount(f"{PREFIX}/static", static, name="console-static")
    api.include_router(router)
    api.include_router(lead_routes.router)
    api.include_router(upload_routes.router)
    api.include_router(account_routes.router)


def _cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


@router.get("")
async def home() -> Response:
    return redirect(f"{PREFIX}/campaigns")


# Signing in and out --------------------------------------------------------------------


async def _sign_in_form(
    request: Request, error: str | None = None, username: str = "", status: int = 200
) -> Response:
    token, cookie = await console_of(request).sessions.sign_in_token()
    context = {"error": error, "username": username, "sign_in_token": token}
    response = render(request, "sign_in.html", context, status)
    _cookie(request, response, SIGN_IN_COOKIE, cookie)
    return response


@router.get("/sign-in")
async def sign_in_page(request: Request) -> Response:
    return await _sign_in_form(request)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    """A failed sign-in counts against the address's budget, like a refused API call; an
    address over its budget is refused before any key is checked."""
    form = await form_of(request)
    store = console_of(request).sessions
    token = form.get("csrf_token")
    cookie = request.cookies.get(SIGN_IN_COOKIE)
    if not await store.sign_in_token_matches(cookie, token if isinstance(token, str) else None):
        raise Forbidden(CSRF_FAILED)
    username, api_key = text(form, "username"), text(form, "api_key")
    services = services_of(request)
    address = request.client.host if request.client else "unknown"
    spent = await services.limiter.address_spent(address)
    if spent:  # over the budget: no key is checked, right or wrong
        return await _sign_in_form(request, TOO_MANY.format(spent), username, 429)
    account = None
    if username and api_key:
        account = await services.auth.key_account(username, api_key)
    if account is None:
        wait = await services.limiter.hit_address(address)
        message = TOO_MANY.format(wait) if wait else SIGN_IN_FAILED
        return await _sign_in_form(request, message, username, 429 if wait else 401)
    async with session_scope(services.sessionmaker) as session:
        await end_expired(session, store.idle)
        cookie_value = await store.create(session, account.id)
    response = redirect(f"{PREFIX}/campaigns")
    _cookie(request, response, COOKIE, cookie_value)
    response.delete_cookie(SIGN_IN_COOKIE, path=PREFIX)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    async with signed_in(request) as page:
        await form_of(request, page)
        await end(page.session, page.signed_in.key)
    response = redirect(SIGN_IN)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


# Campaigns -----------------------------------------------------------------------------


async def _campaigns_page(
    request: Request, errors: dict[str, str] | None = None, values: dict[str, str] | None = None
) -> Response:
    console = console_of(request)
    async with signed_in(request, read_only=True) as page:
        found = await reads.own_campaigns(page.session, page.account)
    counts = {c.id: await console.counts.get(c.id) for c in found}
    context = {
        "page": page,
        "campaigns": found,
        "counts": counts,
        "states": reads.STATES,
        "dial_types": [d.value for d in DialType],
        "routings": [r.value for r in Routing],
        "errors": errors or {},
        "values": values or {},
    }
    return render(request, "campaigns.html", context)


@router.get("/campaigns")
async def campaigns_page(request: Request) -> Response:
    return await _campaigns_page(request)


@router.post("/campaigns")
async def create_campaign(request: Request) -> Response:
    try:
        async with signed_in(request) as page:
            form = await form_of(request, page)
            keys = ("name", "dial_type", "routing", "agents", "skills")
            values = {k: text(form, k) for k in keys}
            if not values["name"]:
                raise FormErrors({"name": "Give the campaign a name."}, values)
            try:
                created = await campaigns.create_campaign(
                    page.session,
                    page.account.username,
                    values["name"],
                    dial_type=values["dial_type"] or DialType.PROGRESSIVE.value,
                    routing=values["routing"] or Routing.GENERAL.value,
                    agents=names(form, "agents"),
                    skills=names(form, "skills"),
                )
            except (Invalid, Conflict) as exc:
                raise FormErrors({_create_field(exc.message): exc.message}, values) from None
    except FormErrors as exc:
        return await _campaigns_page(request, exc.errors, exc.values)
    return redirect(f"{PREFIX}/campaigns/{created.id}")


def _create_field(message: str) -> str:
    for field, words in (
        ("dial_type", "dial type"),
        ("routing", "routing"),
        ("agents", "agents"),
        ("skills", "skills"),
    ):
        if words in message:
            return field
    return "name"


# A campaign ----------------------------------------------------------------------------


@router.get("/campaigns/{campaign_id:int}")
async def campaign_page(campaign_id: int, request: Request) -> Response:
    return await show_campaign(request, campaign_id)


@router.get("/campaigns/{campaign_id:int}/counts")
async def campaign_counts(campaign_id: int, request: Request) -> Response:
    """The live counts (htmx polls this fragment)."""
    console = console_of(request)
    async with signed_in(request, read_only=True) as page:
        campaign = await reads.own_campaign(page.session, page.account, campaign_id)
    context = {
        "page": page,
        "campaign": campaign,
        "counts": await console.counts.get(campaign.id),
        "states": reads.STATES,
    }
    return render(request, "_counts.html", context)


@router.get("/campaigns/{campaign_id:int}/forecast")
async def campaign_forecast(campaign_id: int, request: Request) -> Response:
    console = console_of(request)
    async with signed_in(request, read_only=True) as page:
        campaign = await reads.own_campaign(page.session, page.account, campaign_id)
    forecast = await console.forecast.get(campaign.id)
    return render(request, "_forecast.html", {"page": page, "forecast": forecast})


async def _set_running(request: Request, campaign_id: int, running: bool) -> Response:
    async with signed_in(request) as page:
        await form_of(request, page)
        campaign = await reads.own_campaign(page.session, page.account, campaign_id)
        await set_campaign_running(page.session, page.account, campaign.name, running)
    console_of(request).changed(campaign_id)
    return redirect(f"{PREFIX}/campaigns/{campaign_id}")


@router.post("/campaigns/{campaign_id:int}/start")
async def start(campaign_id: int, request: Request) -> Response:
    return await _set_running(request, campaign_id, True)


@router.post("/campaigns/{campaign_id:int}/stop")
async def stop(campaign_id: int, request: Request) -> Response:
    return await _set_running(request, campaign_id, False)


async def _settings_page(
    request: Request,
    campaign_id: int,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    async with signed_in(request, read_only=True) as page:
        campaign = await reads.own_campaign(page.session, page.account, campaign_id)
    shown = values or {
        "agents": ", ".join(campaign.agents),
        "skills": ", ".join(campaign.skills),
        "max_attempts": str(campaign.max_attempts),
        "retry_delay": str(campaign.retry_delay_seconds),
        "retry_delays": campaigns.format_retry_delays(campaign.retry_delays or {}),
        "calling_hours": campaign.calling_hours or "",
    }
    context = {"page": page, "campaign": campaign, "values": shown, "errors": errors or {}}
    return render(request, "settings.html", context)


@router.get("/campaigns/{campaign_id:int}/settings")
async def settings_page(campaign_id: int, request: Request) -> Response:
    return await _settings_page(request, campaign_id)


SETTINGS_FIELDS = (
    "agents",
    "skills",
    "max_attempts",
    "retry_delay",
    "retry_delays",
    "calling_hours",
)


@router.post("/campaigns/{campaign_id:int}/settings")
async def save_settings(campaign_id: int, request: Request) -> Response:
    try:
        async with signed_in(request) as page:
            form = await form_of(request, page)
            campaign = await reads.own_campaign(page.session, page.account, campaign_id)
            values = {k: text(form, k) for k in SETTINGS_FIELDS}
            errors: dict[str, str] = {}
            attempts = collect(
                errors, "max_attempts", lambda: whole_number(values["max_attempts"], "Max attempts")
            )
            delay = collect(
                errors, "retry_delay", lambda: whole_number(values["retry_delay"], "Retry delay")
            )
            delays = collect(
                errors, "retry_delays", lambda: campaigns.parse_retry_delays(values["retry_delays"])
            )
            collect(
                errors,
                "calling_hours",
                lambda: campaigns.check_calling_hours(values["calling_hours"]),
            )
            if errors:
                raise FormErrors(errors, values)
            try:
                await campaigns.update_campaign(
                    page.session,
                    page.account.username,
                    campaign.name,
                    max_attempts=attempts,
                    retry_delay=delay,
                    agents=names(form, "agents"),
                    skills=names(form, "skills"),
                    calling_hours=values["calling_hours"],
                    retry_delays=delays,
                )
            except Invalid as exc:
                raise FormErrors({_settings_field(exc.message): exc.message}, values) from None
    except FormErrors as exc:
        return await _settings_page(request, campaign_id, exc.values, exc.errors)
    console_of(request).changed(campaign_id)
    return redirect(f"{PREFIX}/campaigns/{campaign_id}")


def _settings_field(message: str) -> str:
    for field, words in (
        ("max_attempts", "max attempts"),
        ("retry_delays", "retry delays"),
        ("retry_delay", "retry delay"),
        ("skills", "skills"),
    ):
        if words in message:
            return field
    return "agents"
