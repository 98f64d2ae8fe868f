"""Idempotency across workers: 50 concurrent retries of one AddCampaignData request with one
``Idempotency-Key``, against a real ``dialbase serve --workers 3`` on PostgreSQL with its
rate limits in Redis, store one lead and all get the same answer; the key with another
request is then refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx

from dialbase.db import asyncpg_dsn
from tests.conftest import REDIS_URL, needs_postgres, needs_redis
from tests.deploy.conftest import ServerFactory
from tests.deploy.processes import clean_env, run_cli, wait_ready

pytestmark = [needs_postgres, needs_redis]

KEY = "idem-deploy-key-1"
ADD = "/ca_apis/AddCampaignData"
BODY = {
    "userName": "idem",
    "apiKey": KEY,
    "campaignName": "Sales",
    "phoneNumber": "9876543210",
}
STORED = b'{"status":"Success","message":"SuccessFully Updated Progressive Campaign"}'
MISMATCH = {
    "status": "false",
    "message": "This Idempotency-Key was already used with a different request (method, path,"
    " query string or body); use a new key for a new request.",
    "data": None,
}


async def _count(url: str, sql: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def _burst(base_url: str, n: int) -> list[httpx.Response]:
    # One connection per request: the kernel spreads them over the three workers.
    async def one() -> httpx.Response:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            return await client.post(ADD, json=BODY, headers={"Idempotency-Key": "retry-1"})

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def test_fifty_concurrent_retries_on_three_workers_store_one_lead(
    servers: ServerFactory, pg_url: str, redis_prefix: str, tmp_path: Path
):
    assert REDIS_URL
    run_cli("db", "upgrade", "--database-url", pg_url)
    cli_env = clean_env(DIALBASE_DATABASE_URL=pg_url)
    run_cli("account", "create", "--username", "idem", "--api-key", KEY, env=cli_env)
    made = ("--name", "Sales", "--dial-type", "Progressive", "--direction", "outbound")
    run_cli("campaign", "create", "--username", "idem", *made, env=cli_env)
    server = servers(
        "idem",
        "--database-url",
        pg_url,
        "--redis-url",
        REDIS_URL,
        env=clean_env(DIALBASE_REDIS_PREFIX=redis_prefix),
        workers=3,
    )
    wait_ready(server)

    answers = await _burst(server.url, 50)

    assert [(a.status_code, a.content) for a in answers] == [(200, STORED)] * 50
    assert {a.headers["content-type"] for a in answers} == {"application/json"}
    assert sum("idempotent-replayed" not in a.headers for a in answers) == 1
    assert await _count(pg_url, "SELECT count(*) FROM leads") == 1
    assert await _count(pg_url, "SELECT count(*) FROM idempotency_keys") == 1

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        other = await client.post(
            ADD, json={**BODY, "phoneNumber": "9876543211"}, headers={"Idempotency-Key": "retry-1"}
        )
    assert (other.status_code, other.json()) == (422, MISMATCH)
    assert await _count(pg_url, "SELECT count(*) FROM leads") == 1
