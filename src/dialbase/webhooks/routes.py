"""``/v1/webhooks`` and ``/v1/campaigns/{campaign}/webhooks``: webhook settings, and
``/v1/webhooks/deliveries``: the account's events and their delivery. HTTP in, HTTP out.

Authenticated like the rest of ``/v1`` (HTTP Basic, ``dialer.routes.account_scope``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from dialbase.dialer.routes import PREFIX, Credentials, account_scope
from dialbase.dialer.schemas import problem_responses
from dialbase.errors import Invalid
from dialbase.services import services_of
from dialbase.webhooks import service
from dialbase.webhooks.schemas import DeliveryOut, DeliveryPageOut, WebhookOut, WebhookPut

router = APIRouter(
    prefix=PREFIX,
    tags=["webhooks"],
    responses=problem_responses(400, 401, 404, 422, 429, 500, 503),
)
MAX_AFTER = 2**63 - 1


def _out(saved: service.Saved) -> WebhookOut:
    view = service.webhook_view(saved.webhook, saved.campaign)
    return WebhookOut(**view, secret=saved.new_secret)


async def _put(
    request: Request,
    response: Response,
    credentials: Credentials,
    body: WebhookPut,
    campaign: str | None,
) -> WebhookOut:
    checked = await service.check_request(
        body.url,
        body.secret,
        body.events,
        allow_private=services_of(request).settings.allow_private_callbacks,
        rotate_secret=body.rotate_secret,
    )
    async with account_scope(request, credentials) as (session, account):
        saved = await service.put_webhook(session, account, campaign, checked)
        shown = _out(saved)
    response.status_code = 201 if saved.created else 200
    return shown


async def _get(request: Request, credentials: Credentials, campaign: str | None) -> WebhookOut:
    async with account_scope(request, credentials, read_only=True) as (session, account):
        webhook, name = await service.get_webhook(session, account, campaign)
        return WebhookOut(**service.webhook_view(webhook, name))


async def _delete(request: Request, credentials: Credentials, campaign: str | None) -> Response:
    async with account_scope(request, credentials) as (session, account):
        await service.remove_webhook(session, account, campaign)
    return Response(status_code=204)


@router.put("/webhooks", response_model=WebhookOut, responses={201: {"model": WebhookOut}})
async def put_account_webhook(
    request: Request, response: Response, credentials: Credentials, body: WebhookPut
) -> WebhookOut:
    """Set the account's webhook (201 when new, with its generated secret)."""
    return await _put(request, response, credentials, body, None)


@router.get("/webhooks", response_model=WebhookOut)
async def get_account_webhook(request: Request, credentials: Credentials) -> WebhookOut:
    """The account's webhook (never its secret)."""
    return await _get(request, credentials, None)


@router.delete("/webhooks", status_code=204, response_class=Response)
async def delete_account_webhook(request: Request, credentials: Credentials) -> Response:
    """Remove the account's webhook."""
    return await _delete(request, credentials, None)


@router.put(
    "/campaigns/{campaign:path}/webhooks",
    response_model=WebhookOut,
    responses={201: {"model": WebhookOut}},
)
async def put_campaign_webhook(
    campaign: str, request: Request, response: Response, credentials: Credentials, body: WebhookPut
) -> WebhookOut:
    """Set the campaign's own webhook: it replaces the account's for this campaign."""
    return await _put(request, response, credentials, body, campaign)


@router.get("/campaigns/{campaign:path}/webhooks", response_model=WebhookOut)
async def get_campaign_webhook(
    campaign: str, request: Request, credentials: Credentials
) -> WebhookOut:
    """The campaign's own webhook (never its secret)."""
    return await _get(request, credentials, campaign)


@router.delete("/campaigns/{campaign:path}/webhooks", status_code=204, response_class=Response)
async def delete_campaign_webhook(
    campaign: str, request: Request, credentials: Credentials
) -> Response:
    """Remove the campaign's own webhook (the account's applies again)."""
    return await _delete(request, credentials, campaign)


@router.get("/webhooks/deliveries", response_model=DeliveryPageOut)
async def list_deliveries(
    request: Request,
    credentials: Credentials,
    status: Annotated[
        str | None, Query(description="pending, delivered or failed; none: all.")
    ] = None,
    after: Annotated[str | None, Query(description="`nextAfter` of the page before.")] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 100,
) -> DeliveryPageOut:
    """The account's events, newest first, with their delivery state."""
    cursor = _after(after)
    service.check_status(status)
    async with account_scope(request, credentials, read_only=True) as (session, account):
        page = await service.list_deliveries(
            session, account.id, status=status, after=cursor, limit=limit
        )
        deliveries = [DeliveryOut(**service.delivery_view(event)) for event in page.events]
    next_after = str(page.next_after) if page.next_after is not None else None
    return DeliveryPageOut(deliveries=deliveries, next_after=next_after)


def _after(after: str | None) -> int | None:
    if after is None:
        return None
    if not after.isascii() or not after.isdigit() or int(after) > MAX_AFTER:
        raise Invalid("after: pass nextAfter as the page before gave it")
    return int(after)
