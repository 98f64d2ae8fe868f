"""The ``dialbase`` command: thin, every command calls the same services as the API."""

from __future__ import annotations

import csv
import os
import sqlite3
import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from dialbase import __version__, backup, server
from dialbase.accounts import service as accounts
from dialbase.campaigns import service as campaigns
from dialbase.cli_common import (
    DatabaseURL,
    JsonFlag,
    Username,
    fail,
    migrate_database,
    print_fields,
    print_json,
    print_table,
    settings_for,
    shown_url,
    with_session,
)
from dialbase.config import Settings
from dialbase.db import DatabaseURLError
from dialbase.demo import (
    Demo,
    demo_key_file,
    ensure_demo,
    print_demo,
    read_demo_key,
    save_demo_key,
)
from dialbase.dialer.cli import dialer_app
from dialbase.dialer.cli import register as register_dialer_commands
from dialbase.dnc.cli import dnc_app
from dialbase.errors import Invalid
from dialbase.imports.cli import register as register_import_command
from dialbase.leads.service import EXPORT_FIELDS, iter_leads
from dialbase.webhooks.cli import webhooks_app

# Plain click help (no rich boxes): option names are never cut at narrow widths.
HELP = {"max_content_width": 120}
app = typer.Typer(
    help="dialbase: lead store for outbound dialer campaigns.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=HELP,
)


def _group(text: str) -> typer.Typer:
    return typer.Typer(help=text, no_args_is_help=True, rich_markup_mode=None)


account_app = _group("Create, list and change accounts.")
campaign_app = _group("Create, list, change, start and stop campaigns.")
leads_app = _group("Read leads back out; say why one is not being dialed.")
db_app = _group("Database schema and backups.")
app.add_typer(account_app, name="account")
app.add_typer(campaign_app, name="campaign")
app.add_typer(leads_app, name="leads")
app.add_typer(db_app, name="db")
app.add_typer(dialer_app, name="dialer")
app.add_typer(dnc_app, name="dnc")
app.add_typer(webhooks_app, name="webhooks")
register_dialer_commands(campaign_app, leads_app)
register_import_command(leads_app)

Name = Annotated[str, typer.Option("--name", help="The campaign's name.")]
CsvList = Annotated[str | None, typer.Option(help="Comma-separated list.")]
DefaultCountry = Annotated[
    str | None,
    typer.Option(
        help='ISO 3166 code (e.g. IN) of numbers sent without a country prefix; "" for none.'
    ),
]
KEY_HELP = "Generated when not given; keys are unique: never another account's key."
DAILY_ATTEMPTS_HELP = "Most hand-outs of one number in any 24 hours (0 to 1000; 0: no cap)."


def _split(values: str | None) -> list[str] | None:
    return None if values is None else [v for v in values.split(",") if v.strip()]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dialbase {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """dialbase: lead store for outbound dialer campaigns."""


REDIS_SCHEMES = ("redis", "rediss", "unix")


@app.command()
def serve(
    database_url: DatabaseURL = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=1, max=65535, envvar="DIALBASE_PORT", help="Port to listen on.")
    ] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    redis_url: Annotated[
        str | None,
        typer.Option(
            envvar="DIALBASE_REDIS_URL",
            help="Share rate limits in Redis: redis://, rediss:// or unix:// URL.",
        ),
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Create demo data (once) and print its credentials.")
    ] = False,
    access_log: Annotated[
        bool,
        typer.Option(
            envvar="DIALBASE_ACCESS_LOG",
            help="Log every request (id, account, endpoint, status, time; never keys or numbers).",
        ),
    ] = False,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="Proxies trusted for X-Forwarded-For (comma-separated addresses, or *)."
            " Default: DIALBASE_FORWARDED_ALLOW_IPS, else none: the client address is the"
            " connection's.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (creates or migrates the database's schema first)."""
    settings = settings_for(database_url, redis_url=redis_url)
    _check_redis_url(settings.redis_url)
    demo_info = _start_demo(settings) if demo else None
    if not demo:
        with_session(settings, _noop, access="upgrade")
    os.environ["DIALBASE_DATABASE_URL"] = settings.database_url
    os.environ["DIALBASE_ACCESS_LOG"] = "true" if access_log else "false"
    if settings.redis_url:
        os.environ["DIALBASE_REDIS_URL"] = settings.redis_url
    if demo_info is not None:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        print_demo(demo_info, f"http://{shown}:{port}")
    server.run(
        settings.model_copy(update={"access_log": access_log}),
        host=host,
        port=port,
        workers=workers,
        forwarded_allow_ips=forwarded_allow_ips,
    )


def _check_redis_url(url: str | None) -> None:
    """Refuse a Redis URL uvicorn's workers would only fail on (one line, exit 1)."""
    if url and urlsplit(url).scheme.lower() not in REDIS_SCHEMES:
        fail(
            f"bad setting: DIALBASE_REDIS_URL: {url!r} is not a redis://, rediss:// or unix:// URL"
        )


def _start_demo(settings: Settings) -> Demo:
    """The demo data, created once; its key is kept in a file beside a SQLite database."""
    saved = read_demo_key(settings.database_url)

    async def work(session: AsyncSession) -> Demo:
        return await ensure_demo(session, saved_key=saved)

    demo = with_session(settings, work, access="upgrade")
    if demo.api_key is None:
        return demo
    if demo.api_key == saved:
        demo.key_file = demo_key_file(settings.database_url)
    else:
        demo.key_file = save_demo_key(settings.database_url, demo.api_key)
    return demo


async def _noop(_session: AsyncSession) -> None:
    return None


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseURL = None) -> None:
    """Create or migrate the database's schema (as `serve` does on start)."""
    settings = settings_for(database_url)
    migration = migrate_database(settings)
    typer.echo(f"{migration.describe()} in {shown_url(settings.database_url)}")


@db_app.command("backup")
def db_backup(
    file: Annotated[Path, typer.Argument(help="Where to write the copy.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")] = False,
    database_url: DatabaseURL = None,
) -> None:
    """Copy a SQLite database to FILE, safely while the server runs (SQLite's online backup).

    PostgreSQL: use pg_dump (docs/deploy.md).
    """
    settings = settings_for(database_url)
    try:
        done = backup.backup_sqlite(settings.database_url, file, force=force)
    except (backup.BackupError, DatabaseURLError) as exc:
        fail(str(exc))
    except (sqlite3.Error, OSError) as exc:
        fail(f"cannot back up {shown_url(settings.database_url)}: {type(exc).__name__}: {exc}")
    typer.echo(f"backed up {done.source} to {done.target} ({done.size} bytes)")


@account_app.command("create")
def account_create(
    username: Username,
    api_key: Annotated[str | None, typer.Option(help=KEY_HELP)] = None,
    auth_mode: Annotated[str, typer.Option(help="BASIC_AUTH, TOKEN_AUTH or NONE.")] = "BASIC_AUTH",
    timezone: Annotated[str, typer.Option(help="IANA time zone.")] = "UTC",
    rate_limit: Annotated[int, typer.Option(help="Requests per minute.")] = 100,
    default_country: DefaultCountry = None,
    max_daily_attempts: Annotated[int, typer.Option(help=DAILY_ATTEMPTS_HELP)] = 0,
    database_url: DatabaseURL = None,
    json: JsonFlag = False,
) -> None:
    """Create an account; its API key is printed alone on the last line (shown once)."""
    _check_key(api_key)

    async def work(session: AsyncSession) -> tuple[dict[str, object], str]:
        account, key = await accounts.create_account(
            session,
            username,
            api_key=api_key,
            auth_mode=auth_mode,
            timezone=timezone,
            rate_limit=rate_limit,
            default_country=default_country,
            max_daily_attempts=max_daily_attempts,
        )
        return accounts.account_detail(account), key

    view, key = with_session(settings_for(database_url), work, access="write")
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
    default_country: DefaultCountry = None,
    max_daily_attempts: Annotated[int | None, typer.Option(help=DAILY_ATTEMPTS_HELP)] = None,
    database_url: DatabaseURL = None,
    json: JsonFlag = False,
) -> None:
    """Change an account's settings (every running server sees the change at once)."""

    async def work(session: AsyncSession) -> dict[str, object]:
        account = await accounts.update_account(
            session,
            username,
            auth_mode=auth_mode,
            timezone=timezone,
            rate_limit=rate_limit,
            default_country=default_country,
            max_daily_attempts=max_daily_attempts,
        )
        return accounts.account_detail(account)

    _show(with_session(settings_for(database_url), work, access="write"), json)


@account_app.command("show")
def account_show(username: Username, database_url: DatabaseURL = None, json: JsonFlag = False):
    """Show an account's settings (never its key)."""

    async def work(session: AsyncSession) -> dict[str, object]:
        return accounts.account_detail(await accounts.get_account(session, username))

    _show(with_session(settings_for(database_url), work), json)


@account_app.command("rotate-key")
def account_rotate_key(
    username: Username,
    api_key: Annotated[str | None, typer.Option(help=KEY_HELP)] = None,
    database_url: DatabaseURL = None,
    json: JsonFlag = False,
) -> None:
    """Give an account a new API key, printed alone on the last line (shown once).

    The old key stops working at once, on every worker of every server.
    """
    _check_key(api_key)

    async def work(session: AsyncSession) -> tuple[dict[str, object], str]:
        account, key = await accounts.rotate_api_key(session, username, api_key=api_key)
        return accounts.account_view(account), key

    view, key = with_session(settings_for(database_url), work, access="write")
    if json:
        print_json({**view, "apiKey": key})
        return
    typer.echo(f"account {view['username']!r} has a new API key; the old one no longer works.")
    typer.echo("API key (shown once, store it now):")
    typer.echo(key)


@account_app.command("list")
def account_list(database_url: DatabaseURL = None, json: JsonFlag = False) -> None:
    """List every account (never their keys)."""

    async def work(session: AsyncSession) -> list[dict[str, object]]:
        return [accounts.account_view(a) for a in await accounts.list_accounts(session)]

    views = with_session(settings_for(database_url), work)
    print_json(views) if json else print_table(views, "no account yet")


def _check_key(api_key: str | None) -> None:
    """Refuse a bad ``--api-key`` before the database is opened (or created)."""
    if api_key is not None:
        try:
            accounts.check_api_key(api_key)
        except Invalid as exc:
            fail(exc.message)


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

    _show(with_session(settings_for(database_url), work, access="write"), json)


@campaign_app.command("show")
def campaign_show(
    username: Username, name: Name, database_url: DatabaseURL = None, json: JsonFlag = False
) -> None:
    """Show a campaign with its lead count."""

    async def work(session: AsyncSession) -> dict[str, object]:
        campaign = await campaigns.get_campaign(session, username, name)
        return await campaigns.campaign_view(session, campaign)

    _show_campaign(with_session(settings_for(database_url), work), json)


def _show_campaign(view: dict[str, object], json: bool) -> None:
    """As ``_show``; the table spells retry delays as ``--retry-delays`` takes them."""
    if json:
        print_json(view)
        return
    delays = view["retryDelays"]
    assert isinstance(delays, dict)
    print_fields({**view, "retryDelays": campaigns.format_retry_delays(delays) or None})


@campaign_app.command("list")
def campaign_list(username: Username, database_url: DatabaseURL = None, json: JsonFlag = False):
    """List an account's campaigns with their lead counts."""

    async def work(session: AsyncSession) -> list[dict[str, object]]:
        return await campaigns.campaign_views(
            session, await campaigns.list_campaigns(session, username)
        )

    views = with_session(settings_for(database_url), work)
    if json:
        print_json(views)
        return
    columns = ("name", "dialType", "direction", "routing", "running", "leadCount")
    print_table(
        [{k: v[k] for k in columns} for v in views], f"account {username!r} has no campaign"
    )


@campaign_app.command("update")
def campaign_update(
    username: Username,
    name: Name,
    max_attempts: Annotated[int | None, typer.Option(help="Dial attempts per lead.")] = None,
    retry_delay: Annotated[int | None, typer.Option(help="Seconds between attempts.")] = None,
    agents: CsvList = None,
    skills: CsvList = None,
    calling_hours: Annotated[
        str | None,
        typer.Option(
            help='When leads may be dialed, in their local time, e.g. "mon-fri 09:00-20:00,'
            ' sat 10:00-16:00"; "" for any time.'
        ),
    ] = None,
    retry_delays: Annotated[
        str | None,
        typer.Option(
            help="Seconds before the next attempt after an outcome, overriding --retry-delay,"
            ' e.g. "no_answer=600,busy=120,failed=1800"; "" for none.'
        ),
    ] = None,
    database_url: DatabaseURL = None,
    json: JsonFlag = False,
) -> None:
    """Change a campaign's retry policy, calling hours, agents or skills.

    Every running server sees the change at once.
    """

    async def work(session: AsyncSession) -> dict[str, object]:
        delays = None if retry_delays is None else campaigns.parse_retry_delays(retry_delays)
        campaign = await campaigns.update_campaign(
            session,
            username,
            name,
            max_attempts=max_attempts,
            retry_delay=retry_delay,
            agents=_split(agents),
            skills=_split(skills),
            calling_hours=calling_hours,
            retry_delays=delays,
        )
        return await campaigns.campaign_view(session, campaign)

    _show_campaign(with_session(settings_for(database_url), work, access="write"), json)


def _set_running(username: str, name: str, running: bool, database_url: str | None) -> None:
    async def work(session: AsyncSession) -> bool:
        campaign = await campaigns.get_campaign(session, username, name)
        return await campaigns.set_running(session, campaign, running)

    changed = with_session(settings_for(database_url), work, access="write")
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
    format: Annotated[
        str | None, typer.Option("--format", help="json or csv.", show_default="json")
    ] = None,
    database_url: DatabaseURL = None,
    json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """Print every lead of a campaign (instants in the account's time zone)."""
    if json and format not in (None, "json"):
        typer.echo(f"error: --json and --format {format} conflict: give one of them", err=True)
        raise typer.Exit(2)
    format = format or "json"
    if format not in ("json", "csv"):
        fail(f"unknown format {format!r}: use json or csv")

    async def work(session: AsyncSession) -> None:
        account = await accounts.get_account(session, username)
        found = await campaigns.get_account_campaign(session, account, campaign)
        rows = iter_leads(session, found, ZoneInfo(account.timezone))
        await (_write_json(rows) if format == "json" else _write_csv(rows))
        sys.stdout.flush()  # a closed pipe fails here, inside the command's error handling

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
