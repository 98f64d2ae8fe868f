"""``dialbase webhooks``: an account's (or a campaign's) webhook, and its deliveries.
Thin, over ``webhooks.service``; the same checks as ``/v1/webhooks``.

A generated secret is printed once, alone on the last line of ``set`` (as ``account
create`` prints an API key); it is never shown again.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from dialbase.accounts.service import get_account
from dialbase.cli_common import (
    DatabaseURL,
    JsonFlag,
    Username,
    print_fields,
    print_json,
    print_table,
    run_async,
    settings_for,
    with_session,
)
from dialbase.webhooks import service

webhooks_app = typer.Typer(
    help="Outcome webhooks: set, show, remove; list deliveries.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

Campaign = Annotated[
    str | None,
    typer.Option("--campaign", help="The campaign's own webhook; left out: the account's."),
]


def _shown(value: dict[str, Any]) -> dict[str, Any]:
    return {
        key: service.instant(item) if key.endswith("At") else item for key, item in value.items()
    }


@webhooks_app.command("set")
def set_webhook(
    username: Username,
    url: Annotated[str, typer.Option("--url", help="http or https URL of a public address.")],
    campaign: Campaign = None,
    secret: Annotated[
        str | None,
        typer.Option("--secret", help="whsec_... (base64); left out: kept, or generated."),
    ] = None,
    events: Annotated[
        str | None,
        typer.Option("--events", help="Comma-separated event types; left out: all."),
    ] = None,
    rotate_secret: Annotated[
        bool, typer.Option("--rotate-secret", help="Replace the secret with a generated one.")
    ] = False,
    database_url: DatabaseURL = None,
) -> None:
    """Create or replace a webhook; a generated secret is printed alone on the last line."""
    settings = settings_for(database_url)
    checked = run_async(
        service.check_request(
            url,
            secret,
            events.split(",") if events is not None else None,
            allow_private=settings.allow_private_callbacks,
            rotate_secret=rotate_secret,
        )
    )

    async def work(session: AsyncSession) -> service.Saved:
        account = await get_account(session, username)
        return await service.put_webhook(session, account, campaign, checked)

    saved = with_session(settings, work, access="write")
    print_fields(_shown(service.webhook_view(saved.webhook, saved.campaign)))
    if saved.new_secret is not None:
        typer.echo("secret (shown once):", err=True)
        typer.echo(saved.new_secret)


@webhooks_app.command("show")
def show(
    username: Username,
    campaign: Campaign = None,
    database_url: DatabaseURL = None,
    json: JsonFlag = False,
) -> None:
    """Show a webhook (never its secret)."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        account = await get_account(session, username)
        webhook, name = await service.get_webhook(session, account, campaign)
        return _shown(service.webhook_view(webhook, name))

    view = with_session(settings_for(database_url), work)
    if json:
        print_json(view)
    else:
        print_fields(view)


@webhooks_app.command("remove")
def remove(username: Username, campaign: Campaign = None, database_url: DatabaseURL = None) -> None:
    """Remove a webhook (a campaign's: the account's applies to it again)."""

    async def work(session: AsyncSession) -> None:
        account = await get_account(session, username)
        await service.remove_webhook(session, account, campaign)

    with_session(settings_for(database_url), work, access="write")
    typer.echo(f"webhook of {'campaign ' + repr(campaign) if campaign else repr(username)} removed")


@webhooks_app.command("deliveries")
def deliveries(
    username: Username,
    status: Annotated[
        str | None, typer.Option("--status", help="pending, delivered or failed.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Most events shown.")] = 50,
    after: Annotated[
        int | None, typer.Option("--after", help="The 'next' of the page before.")
    ] = None,
    database_url: DatabaseURL = None,
    json: JsonFlag = False,
) -> None:
    """The account's events, newest first, and how their delivery went."""

    async def work(session: AsyncSession) -> service.DeliveryPage:
        account = await get_account(session, username)
        return await service.list_deliveries(
            session, account.id, status=status, after=after, limit=limit
        )

    page = with_session(settings_for(database_url), work)
    rows = [_shown(service.delivery_view(event)) for event in page.events]
    if json:
        print_json({"deliveries": rows, "nextAfter": page.next_after})
        return
    columns = ("eventId", "type", "leadId", "status", "attempts", "createdAt", "lastError")
    print_table([{key: row[key] for key in columns} for row in rows], "no events")
    if page.next_after is not None:
        typer.echo(f"more: --after {page.next_after}", err=True)
