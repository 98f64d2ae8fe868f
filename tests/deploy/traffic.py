"""Requests for deployment tests: seed an account with the CLI, send many adds at once,
read back which numbers are stored."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from dialbase.config import Settings
from dialbase.db import asyncpg_dsn, create_engine, make_sessionmaker
from dialbase.migrate import upgrade
from tests.deploy.processes import Server, kill, run_cli
from tests.factories import body, make_account, make_campaign

ADD = "/ca_apis/AddCampaignData"
STORED = {"status": "Success", "message": "SuccessFully Updated Progressive Campaign"}
ALREADY = {"status": "SUCCESS", "message": "Number Already Exist"}
REQUEST_TIMEOUT = 30.0
BURST_TIMEOUT = 90.0


def key_of(username: str) -> str:
    """The API key ``seed`` gives an account (keys are unique across accounts)."""
    return "acme-secret-key" if username == "acme" else f"{username}-secret-key"


def seed(env: dict[str, str], username: str = "acme", rate_limit: int = 100_000) -> None:
    """An account (key ``key_of(username)``) with one Progressive campaign ``Sales``."""
    key = key_of(username)
    run_cli(
        "account", "create", "--username", username, "--api-key", key,
        "--rate-limit", str(rate_limit), env=env,
    )  # fmt: skip
    run_cli(
        "campaign", "create", "--username", username, "--name", "Sales",
        "--dial-type", "Progressive", env=env,
    )  # fmt: skip


async def seed_in_process(url: str, rate_limit: int = 100_000) -> None:
    """What ``seed`` makes, without the CLI's start-up cost (migrates first)."""
    engine = create_engine(Settings(database_url=url))
    try:
        await upgrade(engine)
        sessions = make_sessionmaker(engine)
        await make_account(sessions, rate_limit=rate_limit)
        await make_campaign(sessions)
    finally:
        await engine.dispose()


def clear_of_minute_edge(margin: float = 10.0) -> None:
    """Sleep past the next minute boundary when it is less than ``margin`` seconds away.

    Counters in process memory (``limits``' MemoryStorage) use windows aligned to the clock's
    minutes: a burst straddling a boundary is weighed across two windows, and the weighing
    rounds down, letting one request more through. Exact-count tests stay inside one window.
    (Redis windows start at a key's first hit, so a fresh key has no such edge.)
    """
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.2)


def add_body(number: str, username: str = "acme", **fields: Any) -> dict[str, Any]:
    return body(
        **{"userName": username, "apiKey": key_of(username), "phoneNumber": number, **fields}
    )


def client(connections: int | None = None, timeout: float = REQUEST_TIMEOUT) -> httpx.AsyncClient:
    """An HTTP client; ``connections`` bounds its connections (None: one per request)."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(timeout=timeout, limits=limits)


async def burst(
    urls: Sequence[str], bodies: Sequence[dict[str, Any]]
) -> list[httpx.Response | BaseException]:
    """Send every body at once, round-robin over ``urls``; answers in the same order."""
    async with client() as http:
        start = asyncio.Event()

        async def one(i: int, payload: dict[str, Any]) -> httpx.Response:
            await start.wait()
            return await http.post(urls[i % len(urls)] + ADD, json=payload)

        tasks = [asyncio.ensure_future(one(i, b)) for i, b in enumerate(bodies)]
        await asyncio.sleep(0)
        start.set()
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), BURST_TIMEOUT)


def answers(results: Sequence[httpx.Response | BaseException]) -> list[httpx.Response]:
    """The responses, failing on any request that got no answer at all."""
    failed = [r for r in results if not isinstance(r, httpx.Response)]
    assert not failed, f"{len(failed)} requests got no answer, e.g. {failed[0]!r}"
    return [r for r in results if isinstance(r, httpx.Response)]


def sqlite_numbers(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return [row[0] for row in conn.execute("SELECT phone_number FROM leads")]


async def pg_numbers(url: str, username: str = "acme") -> list[str]:
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT l.phone_number FROM leads l JOIN campaigns c ON c.id = l.campaign_id"
            " JOIN accounts a ON a.id = c.account_id WHERE a.username = $1",
            username,
        )
    finally:
        await conn.close()
    return [row[0] for row in rows]


@dataclass
class KilledStream:
    succeeded: list[str]  # numbers answered "stored"
    other: list[httpx.Response]  # any other answer
    killed_after: int  # successes answered when SIGKILL was sent (0: never sent)


async def adds_until_killed(
    server: Server, requests: int, *, check_duplicate: bool
) -> KilledStream:
    """``requests`` adds of new numbers, 64 at a time; SIGKILL the server once half of them
    were answered "stored", while the rest are still in flight."""
    stream = KilledStream([], [], 0)
    async with client(connections=64) as http:

        async def add(i: int) -> None:
            number = f"9{i:09d}"
            body = add_body(number, checkDuplicate="true" if check_duplicate else "false")
            try:
                response = await http.post(server.url + ADD, json=body)
            except httpx.TransportError:
                return  # the server died with this request in flight
            if response.status_code == 200 and response.json() == STORED:
                stream.succeeded.append(number)
            else:
                stream.other.append(response)
            if len(stream.succeeded) >= requests // 2 and not stream.killed_after:
                kill(server)
                stream.killed_after = len(stream.succeeded)

        await asyncio.wait_for(asyncio.gather(*(add(i) for i in range(requests))), BURST_TIMEOUT)
    server.proc.wait(10)
    return stream
