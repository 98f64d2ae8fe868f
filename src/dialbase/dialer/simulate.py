"""A simulated dialer: N agents lease, "dial" and report through the HTTP API, exactly as
a real dialer would, until the campaign is drained. A fake of the outside world (the
phone network), never of dialbase: everything goes over HTTP to a running server."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

# When a call is not answered, what happened (weights).
MISSES = {"no_answer": 55, "busy": 25, "failed": 12, "invalid_number": 5, "do_not_call": 3}
POLL_SECONDS = 0.5
LEASE_SECONDS = 120


class ApiError(Exception):
    """The server refused a request, or could not be reached; the message says why."""


@dataclass(slots=True)
class Tally:
    leased: int = 0
    connected: int = 0
    retried: int = 0  # leases of a lead's second or later attempt


@dataclass
class Options:
    campaign: str
    agents: int = 5
    answer_rate: float = 0.3
    speed: float = 1.0
    seed: int | None = None


class Api:
    """The four calls a dialer makes, answering the JSON bodies or raising ``ApiError``."""

    def __init__(self, client: httpx.AsyncClient, campaign: str) -> None:
        self._client = client
        self._campaign = f"/v1/campaigns/{quote(campaign, safe='')}"

    async def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = await self._client.request(method, url, json=body)
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach dialbase at {self._client.base_url}: {exc}") from exc
        if response.is_success:
            return response.json()
        try:
            detail = response.json()["detail"]
        except (ValueError, KeyError, TypeError):
            detail = response.text[:200]
        raise ApiError(f"{response.status_code} from {url}: {detail}")

    async def stats(self) -> dict[str, Any]:
        return await self._call("GET", f"{self._campaign}/stats")

    async def start(self) -> None:
        await self._call("POST", f"{self._campaign}/start")

    async def lease(self, agent_id: str | None, skill: str | None) -> list[dict[str, Any]]:
        body = {"agentId": agent_id, "skill": skill, "count": 1, "leaseSeconds": LEASE_SECONDS}
        answer = await self._call("POST", f"{self._campaign}/leases", body)
        return answer["leases"]

    async def report(self, lease_id: str, outcome: str) -> None:
        await self._call("POST", f"/v1/leases/{lease_id}/outcome", {"outcome": outcome})


@dataclass
class Simulator:
    api: Api
    options: Options
    rng: random.Random = field(init=False)
    tallies: dict[int, Tally] = field(default_factory=lambda: defaultdict(Tally))
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    last_stats: dict[str, Any] | None = None
    started: bool = False
    finished: bool = False

    def __post_init__(self) -> None:
        self.rng = random.Random(self.options.seed)

    def identities(self, stats: dict[str, Any]) -> list[tuple[str | None, str | None]]:
        """(agentId, skill) of each simulated agent, fitting the campaign's routing."""
        routing, count = stats["routing"], self.options.agents
        if routing == "agentwise":
            names = stats["agents"] or ["agent1"]
            return [(names[i % len(names)], None) for i in range(max(count, len(names)))]
        if routing == "skillwise":
            skills = stats["skills"] or ["general"]
            return [
                (f"sim-{i + 1}", skills[i % len(skills)]) for i in range(max(count, len(skills)))
            ]
        return [(f"sim-{i + 1}", None) for i in range(count)]

    def pick_outcome(self) -> str:
        if self.rng.random() < self.options.answer_rate:
            return "connected"
        return self.rng.choices(list(MISSES), weights=list(MISSES.values()))[0]

    def talk_seconds(self, outcome: str) -> float:
        base = self.rng.uniform(2.0, 6.0) if outcome == "connected" else self.rng.uniform(0.5, 2.0)
        return base / self.options.speed

    async def agent(self, agent_id: str | None, skill: str | None) -> None:
        while not self.finished:
            leases = await self.api.lease(agent_id, skill)
            if not leases:
                await asyncio.sleep(POLL_SECONDS)
                continue
            item = leases[0]
            outcome = self.pick_outcome()
            await asyncio.sleep(self.talk_seconds(outcome))
            await self.api.report(item["leaseId"], outcome)
            self.count(item["lead"], outcome)

    def count(self, lead: dict[str, Any], outcome: str) -> None:
        tally = self.tallies[lead["priority"]]
        tally.leased += 1
        tally.retried += lead["attempt"] > 1
        tally.connected += outcome == "connected"
        self.outcomes[outcome] += 1

    async def monitor(self, progress: Progress, task: Any) -> None:
        while not self.finished:
            stats = self.last_stats = await self.api.stats()
            leads = stats["leads"]
            progress.update(
                task,
                total=leads["total"],
                completed=leads["done"] + leads["expired"],
                description=_phase(stats),
                detail=f"attempts {stats['attempts']}  connects {stats['connects']}",
            )
            self.finished = leads["pending"] + leads["leased"] + leads["retryScheduled"] == 0
            if self.finished:
                progress.update(task, description=f"drained {stats['campaign']}")
            if not self.finished:
                await asyncio.sleep(POLL_SECONDS)

    async def run(self, console: Console) -> None:
        stats = await self.api.stats()
        self.last_stats = stats
        agents = self.identities(stats)
        self.started = True
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("dialing", total=stats["leads"]["total"], detail="")
            async with asyncio.TaskGroup() as group:
                group.create_task(self.monitor(progress, task))
                for agent_id, skill in agents:
                    group.create_task(self.agent(agent_id, skill))


def _phase(stats: dict[str, Any]) -> str:
    leads = stats["leads"]
    if leads["pending"] + leads["leased"] == 0 and leads["retryScheduled"]:
        due = (stats.get("nextRetryAt") or "")[11:19]
        return f"waiting for {leads['retryScheduled']} retries (next {due} UTC)"
    return f"dialing {stats['campaign']}"


def summary(sim: Simulator) -> Table:
    """Per priority: leads, leases, connected, retried, done, expired (from the server)."""
    table = Table(title=f"Campaign {sim.options.campaign!r}: simulated dialing")
    for name in ("Priority", "Leads", "Leased", "Connected", "Retried", "Done", "Expired"):
        table.add_column(name, justify="right")
    stats = sim.last_stats or {"byPriority": []}
    server = {row["priority"]: row["leads"] for row in stats["byPriority"]}
    totals = [0] * 6
    for priority in sorted(set(server) | set(sim.tallies), reverse=True):
        leads = server.get(priority, {"total": 0, "done": 0, "expired": 0})
        tally = sim.tallies.get(priority, Tally())
        row = [
            leads["total"],
            tally.leased,
            tally.connected,
            tally.retried,
            leads["done"],
            leads["expired"],
        ]
        totals = [a + b for a, b in zip(totals, row, strict=True)]
        table.add_row(str(priority), *map(str, row))
    table.add_section()
    table.add_row("all", *map(str, totals), style="bold")
    return table


def outcome_line(sim: Simulator) -> str:
    shown = ", ".join(f"{name} {count}" for name, count in sorted(sim.outcomes.items()))
    return f"outcomes: {shown or 'none'}"
