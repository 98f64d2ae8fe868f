#!/usr/bin/env python3
"""Minimal AddCampaignData service: the baseline dialbase is compared against.

One row per request, committed before answering. SQLite is called directly in
the handler (WAL, synchronous=NORMAL); PostgreSQL goes through an asyncpg pool.

    .venv/bin/python bench/reference_app.py --port 8001 --database-url sqlite:///tmp/ref.db
"""

import sqlite3

import asyncpg
import orjson
from reference_server import serve
from starlette.responses import Response
from starlette.routing import Route

SCHEMA = """CREATE TABLE IF NOT EXISTS bench_leads (
    id {pk}, campaign_name TEXT NOT NULL, phone_number TEXT NOT NULL,
    name TEXT, priority TEXT, body TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS bench_leads_uq ON bench_leads (campaign_name, phone_number)"""
INSERT = (
    "INSERT INTO bench_leads (campaign_name, phone_number, name, priority, body) "
    "VALUES ({}) ON CONFLICT DO NOTHING"
)
OK = orjson.dumps({"status": "Success", "message": "ok"})
FAIL = orjson.dumps({"status": "Fail", "message": "invalid JSON body"})


class SqliteStore:
    def __init__(self, url: str):
        self.db = sqlite3.connect(url.removeprefix("sqlite:///"), check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA.format(pk="INTEGER PRIMARY KEY"))
        self.sql = INSERT.format("?, ?, ?, ?, ?")

    async def insert(self, row: tuple) -> None:
        self.db.execute(self.sql, row)
        self.db.commit()

    async def close(self) -> None:
        self.db.close()


class PostgresStore:
    sql = INSERT.format("$1, $2, $3, $4, $5")

    async def open(self, url: str) -> "PostgresStore":
        self.pool = await asyncpg.create_pool(url, min_size=4, max_size=10)
        for stmt in SCHEMA.format(pk="BIGSERIAL PRIMARY KEY").split(";"):
            await self.pool.execute(stmt)
        return self

    async def insert(self, row: tuple) -> None:
        await self.pool.execute(self.sql, *row)

    async def close(self) -> None:
        await self.pool.close()


async def add_campaign_data(request):
    try:
        data = orjson.loads(await request.body())
        row = (
            str(data["campaignName"]),
            str(data["phoneNumber"]),
            data.get("Name"),
            data.get("priority"),
            orjson.dumps(data).decode(),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return Response(FAIL, 400, media_type="application/json")
    await request.app.state.store.insert(row)
    return Response(OK, media_type="application/json")


ROUTES = [Route("/ca_apis/AddCampaignData", add_campaign_data, methods=["POST"])]

if __name__ == "__main__":
    serve(__doc__, ROUTES, SqliteStore, PostgresStore)
