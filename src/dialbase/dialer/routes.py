"""``/v1``: dialbase's own API for dialers. HTTP in, HTTP out, nothing else.

Authenticated with HTTP Basic (user name, API key). Every error, including a body that
fails validation or an unknown path, answers RFC 9457 problem details
(``dialbase.responses``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from sqlalchemy.ext.asyncio import AsyncSession

from dialbase import phones
from dialbase.accounts.models import Account
from dialbase.accounts.service import authenticate
from dialbase.compat import fields
from dialbase.compat.deletion import delete_numbers
from dialbase.compat.directory import AccountInfo
from dialbase.db import session_scope
from dialbase.dialer import insight, service
from dialbase.dialer.schemas import (
    DeletedOut,
    ExplainedLeadOut,
    ExplainOut,
    ForecastOut,
    LeaseList,
    LeaseOut,
    LeaseRequest,
    OutcomeOut,
    OutcomeRequest,
    RunningOut,
    StatsOut,
    problem_responses,
)
from dialbase.dialer.stats import campaign_stats
from dialbase.errors import Invalid, NotFound, RateLimited, Unauthorized
from dialbase.observability.logs import note_account
from dialbase.services import services_of

PREFIX = "/v1"
BAD_CREDENTIALS = "wrong user name or API key"
_ERRORS: dict[int | str, dict[str, Any]] = problem_responses(400, 401, 404, 422, 429, 500, 503)
_CONFLICT = problem_responses(409)

basic = HTTPBasic(auto_error=False, realm="dialbase", description="User name and API key.")
Credentials = Annotated[HTTPBasicCredentials | None, Depends(basic)]
router = APIRouter(prefix=PREFIX, tags=["dialer"], responses=_ERRORS)


async def caller(request: Request, credentials: HTTPBasicCredentials | None) -> AccountInfo:
    """The authenticated account, from the worker's cache when it can (no transaction)."""
    if credentials is None:
        await _refuse(request, "send HTTP Basic credentials: your user name and API key")
    if "\x00" in credentials.username + credentials.password:
        await _refuse(request, BAD_CREDENTIALS)
    directory = services_of(request).directory
    account = await directory.authenticate(credentials.username, credentials.password)
    if account is None:
        await _refuse(request, BAD_CREDENTIALS)
    return account


@contextlib.asynccontextmanager
async def account_scope(
    request: Request, credentials: HTTPBasicCredentials | None, *, read_only: bool = False
) -> AsyncIterator[tuple[AsyncSession, Account]]:
    """One transaction for the request, opened by authenticating its caller (see
    ``db.session_scope`` for ``read_only``)."""
    if credentials is None:
        await _refuse(request, "send HTTP Basic credentials: your user name and API key")
    if "\x00" in credentials.username + credentials.password:
        await _refuse(request, BAD_CREDENTIALS)
    sessions = services_of(request).sessionmaker
    async with session_scope(sessions, read_only=read_only) as session:
        account = await authenticate(session, credentials.username, credentials.password)
        if account is None:
            await _refuse(request, BAD_CREDENTIALS)
        note_account(account.username)
        yield session, account


async def _refuse(request: Request, message: str) -> NoReturn:
    """401, counted against the client address's budget like AddCampaignData's checks 1-3."""
    client = request.client
    wait = await services_of(request).limiter.hit_address(client.host if client else "unknown")
    if wait:
        raise RateLimited(
            f"too many failed authentications from this address; retry in {wait} s", wait
        )
    raise Unauthorized(message)


@router.post("/campaigns/{campaign:path}/leases", response_model=LeaseList, responses=_CONFLICT)
async def lease_leads(
    campaign: str, request: Request, credentials: Credentials, body: LeaseRequest | None = None
) -> LeaseList:
    """Lease the campaign's next due leads (queue order); an empty list when none is due.

    The body may be left out: one lead, any agent and skill, the default lease time."""
    body = body or LeaseRequest()
    account = await caller(request, credentials)
    leased = await services_of(request).dialer.lease(
        account,
        campaign,
        agent_id=body.agent_id,
        skill=body.skill,
        count=body.count,
        lease_seconds=body.lease_seconds,
    )
    return LeaseList(leases=[LeaseOut.of(item) for item in leased])


@router.post("/leases/{lease_id}/outcome", response_model=OutcomeOut, responses=_CONFLICT)
async def report_outcome(
    lease_id: str, body: OutcomeRequest, request: Request, credentials: Credentials
) -> OutcomeOut:
    """Report a lease's outcome; the campaign's retry policy decides the lead's next state."""
    account = await caller(request, credentials)
    dialer = services_of(request).dialer
    report = await dialer.report(
        account,
        lease_id,
        body.outcome.value,
        body.note,
        callback_at=body.callback_at,
        agent_id=body.agent_id,
    )
    return OutcomeOut.of(report)


@router.get("/campaigns/{campaign:path}/leads", response_model=ExplainOut)
async def explain_leads(
    campaign: str,
    request: Request,
    credentials: Credentials,
    phone_number: Annotated[str, Query(alias="phoneNumber", max_length=32)],
) -> ExplainOut:
    """The campaign's leads of a number (compared in E.164 form): whether each is dialable
    now, why not, and from when."""
    if fields.phone_number(phone_number) is None:
        raise Invalid("phoneNumber: + optional, then 3 to 16 digits")
    now = services_of(request).dialer.clock()
    async with account_scope(request, credentials, read_only=True) as (session, account):
        found = await service.account_campaign(session, account, campaign)
        leads = await insight.explain_number(session, account, found, phone_number, now)
    return ExplainOut(campaign=found.name, at=now, leads=[ExplainedLeadOut.of(x) for x in leads])


@router.delete("/campaigns/{campaign:path}/leads", response_model=DeletedOut)
async def delete_leads(
    campaign: str,
    request: Request,
    credentials: Credentials,
    phone_number: Annotated[str, Query(alias="phoneNumber", max_length=32)],
    name: Annotated[str | None, Query(max_length=255)] = None,
) -> DeletedOut:
    """Delete the campaign's live leads of a number (compared in E.164 form; with
    ``name``, only the leads of that name, any letter case), whatever their state. 404
    when none matched. A deleted lead leaves the queue, listings, exports and duplicate
    checks at once; its attempts and outcomes stay in the statistics."""
    checked = fields.phone_number(phone_number)
    if checked is None:
        raise Invalid("phoneNumber: + optional, then 3 to 16 digits")
    if name is not None and (not name.strip() or "\x00" in name):
        raise Invalid("name: give a name that is not blank, or leave it out")
    async with account_scope(request, credentials) as (session, account):
        found = await service.account_campaign(session, account, campaign)
        number = phones.e164(checked, account.default_country)
        count = await delete_numbers(session, [found.id], [number], name)
        if not count:
            wanted = f" named {name.strip()!r}" if name is not None else ""
            raise NotFound(f"campaign {found.name!r} has no lead of {checked}{wanted} to delete")
    return DeletedOut(campaign=found.name, phone_number=checked, deleted=count)


@router.get("/campaigns/{campaign:path}/forecast", response_model=ForecastOut)
async def forecast(campaign: str, request: Request, credentials: Credentials) -> ForecastOut:
    """The campaign's queued leads: dialable now, blocked by reason, and how many become
    dialable in each of the next 24 hours."""
    now = services_of(request).dialer.clock()
    async with account_scope(request, credentials, read_only=True) as (session, account):
        found = await service.account_campaign(session, account, campaign)
        result = await insight.campaign_forecast(session, account, found, now)
    return ForecastOut.of(found.name, result)


@router.get("/campaigns/{campaign:path}/stats", response_model=StatsOut)
async def stats(campaign: str, request: Request, credentials: Credentials) -> StatsOut:
    """Leads by state (overall and per priority), attempts, connects, leases by outcome."""
    async with account_scope(request, credentials, read_only=True) as (session, account):
        found = await campaign_stats(session, account, campaign)
    return StatsOut.of(found)


async def _set_running(
    request: Request, credentials: HTTPBasicCredentials | None, campaign: str, running: bool
) -> RunningOut:
    async with account_scope(request, credentials) as (session, account):
        found, changed = await service.set_campaign_running(session, account, campaign, running)
    return RunningOut(campaign=found.name, running=running, changed=changed)


@router.post("/campaigns/{campaign:path}/start", response_model=RunningOut)
async def start(campaign: str, request: Request, credentials: Credentials) -> RunningOut:
    """Start the campaign: its due leads can be leased."""
    return await _set_running(request, credentials, campaign, True)


@router.post("/campaigns/{campaign:path}/stop", response_model=RunningOut)
async def stop(campaign: str, request: Request, credentials: Credentials) -> RunningOut:
    """Stop the campaign: nothing is leased until it starts again."""
    return await _set_running(request, credentials, campaign, False)
