"""``dialbase dialer simulate`` and ``dialbase campaign stats``: thin, over the services."""

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
from dialbase.dialer.schemas import StatsOut
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


def register_stats(campaign_app: typer.Typer) -> None:
    campaign_app.command("stats")(stats_command)


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
