"""The ``dialbase`` command: thin, every command calls the same services as the API."""

from __future__ import annotations

import copy
import csv
import os
import sys
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
import uvicorn
import uvicorn.config
from sqlalchemy.ext.asyncio import AsyncSession

from dialbase.accounts import service as accounts
from dialbase.campaigns import service as campaigns
from dialbase.cli_common import (
    DatabaseURL,
    JsonFlag,
    Username,
    fail,
    print_fields,
    print_json,
    settings_for,
    with_session,
)
from dialbase.demo import curl_line, ensure_demo, simulate_line
from dialbase.dialer.cli import dialer_app, register_stats
from dialbase.leads.service import EXPORT_FIELDS, iter_leads

app = typer.Typer(
    help="dialbase: lead store for outbound dialer campaigns.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
account_app = typer.Typer(help="Create and change accounts.", no_args_is_help=True)
campaign_app = typer.Typer(help="Create, change, start and stop campaigns.", no_args_is_help=True)
leads_app = typer.Typer(help="Read leads back out.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(account_app, name="account")
app.add_typer(campaign_app, name="campaign")
app.add_typer(leads_app, name="leads")
app.add_typer(db_app, name="db")
app.add_typer(dialer_app, name="dialer")
register_stats(campaign_app)

Name = Annotated[str, typer.Option("--name", help="The campaign's name.")]
CsvList = Annotated[str | None, typer.Option(help="Comma-separated list.")]


def _split(values: str | None) -> list[str] | None:
    return None if values is None else [v for v in values.split(",") if v.strip()]


@app.command()
def serve(
    database_url: DatabaseURL = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    redis_url: Annotated[
        str | None, typer.Option(envvar="DIALBASE_REDIS_URL", help="Share rate limits in Redis.")
    ] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Create demo data and print it.")] = False,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    forwarded_allow_ips: Annotated[
        str, typer.Option(help="Proxies trusted for X-Forwarded-For (comma-separated).")
    ] = "127.0.0.1",
) -> None:
    """Serve the HTTP API (migrations are applied first)."""
    settings = settings_for(database_url, redis_url=redis_url)
    demo_info = with_session(settings, ensure_demo if demo else _noop)
    os.environ["DIALBASE_DATABASE_URL"] = settings.database_url
    if settings.redis_url:
        os.environ["DIALBASE_REDIS_URL"] = settings.redis_url
    if demo_info is not None:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        _print_demo(demo_info, f"http://{shown}:{port}")
    uvicorn.run(
        "dialbase.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        log_config=log_config(settings.log_level),
        access_log=access_log,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
    )


def log_config(level: str) -> dict[str, object]:
    """uvicorn's logging setup, plus dialbase's own loggers at the same level."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"]["dialbase"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


async def _noop(_session: AsyncSession) -> None:
    return None


def _print_demo(demo: object, base_url: str) -> None:
    from dialbase.demo import Demo

    assert isinstance(demo, Demo)
    typer.echo("Demo data ready.")
    typer.echo(f"  user name: {demo.username}")
    typer.echo(f"  API key:   {demo.api_key}")
    typer.echo(f"  campaigns: {', '.join(demo.campaigns)}")
    typer.echo("Add a lead:")
    typer.echo(f"  {curl_line(base_url, demo)}")
    typer.echo("Watch a simulated dialer drain 'Demo Progressive' (in another terminal):")
    program = sys.argv[0] if Path(sys.argv[0]).name == "dialbase" else "dialbase"
    typer.echo(f"  {simulate_line(base_url, demo, program)}")
    sys.stdout.flush()


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseURL = None) -> None:
    """Apply the migrations (also done by every other command)."""
    with_session(settings_for(database_url), _noop)
    typer.echo("database schema is up to date")


@account_app.command("create")
def account_create(
    username: Username,
    api_key: Annotated[str | None, typer.Option(help="Generated when not given.")] = None,
    auth_mode: Annotated[str, typer.Option(help="BASIC_AUTH, TOKEN_AUTH or NONE.")] = "BASIC_AUTH",
    timezone: Annotated[str, typer.Option(help="IANA time zone.")] = "UTC",
    rate_limit: Annotated[int, typer.Option(help="Requests per minute.")] = 100,
    database_url: DatabaseURL = None,
    json: JsonFlag = False,
) -> None:
    """Create an account; its API key is printed alone on the last line (shown once)."""

    async def work(session: AsyncSession) -> tuple[dict[str, object], str]:
        account, key = await accounts.create_account(
            session,
            username,
            api_key=api_key,
            auth_mode=auth_mode,
            timezone=timezone,
            rate_limit=rate_limit,
        )
        return accounts.account_view(account), key

    view, key = with_session(settings_for(database_url), work)
    if json:
        print_json({**view, "apiKey": key})
        return
    print_fields(view)
    typer.echo("API key (shown once, store it now):")
    typer.echo(key)


@account_app.command("update")
def account_update(
    username: Username,
    auth_mode: Annotated[str | None, typer.Option(help="BASIC_AUTH, TOKEN_AUTH or NONE.")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA time zone.")] = None,
    rate_limit: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    database_url: DatabaseURL = None,
    json: JsonFlag = False,
) -> None:
    """Change an account's settings."""

    async def work(session: AsyncSession) -> dict[str, object]:
        account = await accounts.update_account(
            session, username, auth_mode=auth_mode, timezone=timezone, rate_limit=rate_limit
        )
        return accounts.account_view(account)

    _show(with_session(settings_for(database_url), work), json)


@account_app.command("show")
def account_show(username: Username, database_url: DatabaseURL = None, json: JsonFlag = False):
    """Show an account's settings (never its key)."""

    async def work(session: AsyncSession) -> dict[str, object]:
        return accounts.account_view(await accounts.get_account(session, username))

    _show(with_session(settings_for(database_url), work), json)


def _show(view: dict[str, object], json: bool) -> None:
    print_json(view) if json else print_fields(view)


@campaign_app.command("create")
def campaign_create(
    username: Username,
    name: Name,
    dial_type: Annotated[str, typer.Option(help="Progressive, Predictive, Preview or IVR.")],
    direction: Annotated[str, typer.Option(help="outbound or inbound.")] = "outbound",
    routing: Annotated[str, typer.Option(help="general, agentwise or skillwise.")] = "general",
    agents: CsvList = None,
    skills: CsvList = None,
    database_url: DatabaseURL = None,
    json: JsonFlag = False,
) -> None:
    """Create a campaign (it starts stopped)."""

    async def work(session: AsyncSession) -> dict[str, object]:
        campaign = await campaigns.create_campaign(
            session,
            username,
            name,
            dial_type=dial_type,
            direction=direction,
            routing=routing,
            agents=_split(agents),
            skills=_split(skills),
        )
        return await campaigns.campaign_view(session, campaign)

    _show(with_session(settings_for(database_url), work), json)


@campaign_app.command("show")
def campaign_show(
    username: Username, name: Name, database_url: DatabaseURL = None, json: JsonFlag = False
) -> None:
    """Show a campaign with its lead count."""

    async def work(session: AsyncSession) -> dict[str, object]:
        campaign = await campaigns.get_campaign(session, username, name)
        return await campaigns.campaign_view(session, campaign)

    _show(with_session(settings_for(database_url), work), json)


@campaign_app.command("update")
def campaign_update(
    username: Username,
    name: Name,
    max_attempts: Annotated[int | None, typer.Option(help="Dial attempts per lead.")] = None,
    retry_delay: Annotated[int | None, typer.Option(help="Seconds between attempts.")] = None,
    agents: CsvList = None,
    skills: CsvList = None,
    database_url: DatabaseURL = None,
    json: JsonFlag = False,
) -> None:
    """Change a campaign's retry policy, agents or skills."""

    async def work(session: AsyncSession) -> dict[str, object]:
        campaign = await campaigns.update_campaign(
            session,
            username,
            name,
            max_attempts=max_attempts,
            retry_delay=retry_delay,
            agents=_split(agents),
            skills=_split(skills),
        )
        return await campaigns.campaign_view(session, campaign)

    _show(with_session(settings_for(database_url), work), json)


def _set_running(username: str, name: str, running: bool, database_url: str | None) -> None:
    async def work(session: AsyncSession) -> bool:
        campaign = await campaigns.get_campaign(session, username, name)
        return await campaigns.set_running(session, campaign, running)

    changed = with_session(settings_for(database_url), work)
    state = "started" if running else "stopped"
    typer.echo(
        f"campaign {name!r} {state}" if changed else f"campaign {name!r} was already {state}"
    )


@campaign_app.command("start")
def campaign_start(username: Username, name: Name, database_url: DatabaseURL = None) -> None:
    """Start a campaign (its leads become due for dialing)."""
    _set_running(username, name, True, database_url)


@campaign_app.command("stop")
def campaign_stop(username: Username, name: Name, database_url: DatabaseURL = None) -> None:
    """Stop a campaign (nothing is leased until it starts again)."""
    _set_running(username, name, False, database_url)


@leads_app.command("export")
def leads_export(
    username: Username,
    campaign: Annotated[str, typer.Option("--campaign", help="The campaign's name.")],
    format: Annotated[str, typer.Option("--format", help="json or csv.")] = "json",
    database_url: DatabaseURL = None,
    json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """Print every lead of a campaign (instants in the account's time zone)."""
    format = "json" if json else format
    if format not in ("json", "csv"):
        fail(f"unknown format {format!r}: use json or csv")

    async def work(session: AsyncSession) -> None:
        account = await accounts.get_account(session, username)
        found = await campaigns.get_account_campaign(session, account, campaign)
        rows = iter_leads(session, found, ZoneInfo(account.timezone))
        await (_write_json(rows) if format == "json" else _write_csv(rows))

    with_session(settings_for(database_url), work)


async def _write_json(rows) -> None:  # type: ignore[no-untyped-def]
    import orjson

    out = sys.stdout
    out.write("[")
    first = True
    async for row in rows:
        out.write(("\n  " if first else ",\n  ") + orjson.dumps(row).decode())
        first = False
    out.write("\n]\n" if not first else "]\n")


async def _write_csv(rows) -> None:  # type: ignore[no-untyped-def]
    import orjson

    writer = csv.writer(sys.stdout)
    writer.writerow(EXPORT_FIELDS)
    async for row in rows:
        row["extra"] = orjson.dumps(row["extra"]).decode()
        writer.writerow([row[f] for f in EXPORT_FIELDS])


def main() -> None:
    app()
