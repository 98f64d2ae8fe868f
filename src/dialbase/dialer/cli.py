"""``dialbase dialer simulate``, ``campaign stats``, ``campaign forecast`` and ``leads
explain``: thin, over the services (the same answers as the ``/v1`` API)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from dialbase.accounts.service import get_account
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
from dialbase.compat import fields
from dialbase.db import utcnow
from dialbase.dialer import insight
from dialbase.dialer.schemas import ExplainedLeadOut, ForecastOut, StatsOut
from dialbase.dialer.service import account_campaign
from dialbase.dialer.simulate import Api, ApiError, Options, Simulator, outcome_line, summary
from dialbase.dialer.stats import campaign_stats

dialer_app = typer.Typer(help="Dialer tools: a simulated dialer.", no_args_is_help=True)


def stats_command(
    username: Username,
    name: Annotated[str, typer.Option("--name", help="The campaign's name.")],
    database_url: DatabaseURL = None,
    json: JsonFlag = False,
) -> None:
    """Show a campaign's leads by state, attempts and connects (as GET /v1/.../stats)."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        account = await get_account(session, username)
        stats = StatsOut.of(await campaign_stats(session, account, name))
        return stats.model_dump(mode="json", by_alias=True)

    view = with_session(settings_for(database_url), work)
    if json:
        print_json(view)
        return
    by_priority = view.pop("byPriority")
    flat: dict[str, Any] = {}
    for key, value in view.items():
        nested = value.items() if isinstance(value, dict) else [(None, value)]
        flat |= {f"{key}.{k}" if k else key: v for k, v in nested}
    print_fields(flat)
    for row in by_priority:
        counts = ", ".join(f"{k} {v}" for k, v in row["leads"].items())
        typer.echo(f"priority {row['priority']}: {counts}")


def forecast_command(
    username: Username,
    name: Annotated[str, typer.Option("--name", help="The campaign's name.")],
    database_url: DatabaseURL = None,
    json: JsonFlag = False,
) -> None:
    """Show a campaign's queued leads: dialable now, blocked by reason, and how many
    become dialable in each of the next 24 hours (as GET /v1/.../forecast)."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        account = await get_account(session, username)
        campaign = await account_campaign(session, account, name)
        found = await insight.campaign_forecast(session, account, campaign, utcnow())
        return ForecastOut.of(campaign.name, found).model_dump(mode="json", by_alias=True)

    view = with_session(settings_for(database_url), work)
    if json:
        print_json(view)
        return
    hours = view.pop("nextHours")
    blocked = view.pop("blocked")
    print_fields(view | {f"blocked.{k}": v for k, v in blocked.items()})
    for hour in hours:
        if hour["becomeDialable"]:
            typer.echo(f"from {hour['start']}: {hour['becomeDialable']} become dialable")


def explain_command(
    username: Username,
    campaign: Annotated[str, typer.Option("--campaign", help="The campaign's name.")],
    phone_number: Annotated[str, typer.Argument(help="The number, in any spelling.")],
    database_url: DatabaseURL = None,
    json: JsonFlag = False,
) -> None:
    """Say whether the campaign's leads of a number are dialable now, why not, and from
    when (as GET /v1/campaigns/{c}/leads?phoneNumber=...)."""
    if fields.phone_number(phone_number) is None:
        fail("the number must be + optional, then 3 to 16 digits")

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        account = await get_account(session, username)
        found = await account_campaign(session, account, campaign)
        leads = await insight.explain_number(session, account, found, phone_number, utcnow())
        return [ExplainedLeadOut.of(x).model_dump(mode="json", by_alias=True) for x in leads]

    leads = with_session(settings_for(database_url), work)
    if json:
        print_json(leads)
        return
    if not leads:
        typer.echo(f"campaign {campaign!r} has no lead with the number {phone_number}")
    for lead in leads:
        state = "dialable now" if lead["dialable"] else "not dialable"
        typer.echo(f"lead {lead['leadId']} ({lead['phoneNumber']}, {lead['status']}): {state}")
        typer.echo(f"  time zones: {', '.join(lead['timeZones'])}")
        for reason in lead["reasons"]:
            until = f" until {reason['until']}" if reason["until"] else ""
            typer.echo(f"  {reason['code']}: {reason['message']}{until}")
        typer.echo(f"  next dialable at: {lead['nextDialableAt'] or 'never'}")


def register(campaign_app: typer.Typer, leads_app: typer.Typer) -> None:
    campaign_app.command("stats")(stats_command)
    campaign_app.command("forecast")(forecast_command)
    leads_app.command("explain")(explain_command)


@dialer_app.command("simulate")
def simulate(
    username: Username,
    campaign: Annotated[str, typer.Option("--campaign", help="The campaign to drain.")],
    agents: Annotated[int, typer.Option(min=1, max=200, help="Simulated agents.")] = 5,
    answer_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of calls answered.")
    ] = 0.3,
    speed: Annotated[
        float, typer.Option(min=0.01, max=10000.0, help="Call time divided by this.")
    ] = 1.0,
    url: Annotated[str, typer.Option(help="The dialbase server.")] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str | None,
        typer.Option(envvar="DIALBASE_API_KEY", help="The account's API key.", show_default=False),
    ] = None,
    start: Annotated[bool, typer.Option("--start", help="Start the campaign if stopped.")] = False,
    seed: Annotated[int | None, typer.Option(help="Random seed (repeatable runs).")] = None,
) -> None:
    """Drain a campaign through the HTTP API with simulated agents and random outcomes."""
    if not api_key:
        fail("give the API key with --api-key or DIALBASE_API_KEY")
    options = Options(campaign, agents, answer_rate, speed, seed)
    console = Console()
    sim: Simulator | None = None

    async def main() -> None:
        nonlocal sim
        auth = httpx.BasicAuth(username, api_key)
        async with httpx.AsyncClient(base_url=url, auth=auth, timeout=30.0) as client:
            sim = Simulator(Api(client, campaign), options)
            await _prepare(sim, start)
            await sim.run(console)

    error = _run(main())
    if sim is not None and sim.started:
        console.print(summary(sim))
        console.print(outcome_line(sim))
    if error:
        fail(error)


async def _prepare(sim: Simulator, start: bool) -> None:
    stats = await sim.api.stats()
    if stats["running"]:
        return
    if not start:
        raise ApiError(f"campaign {stats['campaign']!r} is stopped: pass --start to start it")
    await sim.api.start()


def _run(work: Any) -> str | None:
    """Run the simulation; the reason it stopped early, or None when it drained."""
    try:
        asyncio.run(work)
    except KeyboardInterrupt:
        return "interrupted: unreported leases return to the queue at their deadline"
    except ApiError as exc:
        return str(exc)
    except ExceptionGroup as group:
        first = group.exceptions[0]
        if isinstance(first, ApiError):
            return str(first)
        raise
    return None
