"""A real server of two workers killed (SIGKILL, every process) in the middle of a
200,000-row import, then started again: the import is finished, every row added exactly
once or reported."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from dialbase.config import Settings
from dialbase.db import create_engine, make_sessionmaker, session_scope
from dialbase.imports.models import Import, ImportResult
from dialbase.leads.models import Lead
from tests.conftest import POSTGRES_URL, RUN_ID, needs_postgres, pg_admin, pg_database_url
from tests.deploy import processes
from tests.imports.support import Acme, queue

ROWS = 195_000
DUPLICATES = 5_000  # the first numbers again, at the end: 200,000 rows in all
FINISH_SECONDS = 900  # at a few thousand rows a second on a busy 2-core machine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=needs_postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kill.db'}"
        return
    assert POSTGRES_URL
    name = f"dialbase_t_{RUN_ID}_{uuid.uuid4().hex[:10]}"
    pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield pg_database_url(name)
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _start(tmp_path: Path, name: str, url: str) -> processes.Server:
    env = processes.clean_env(
        DIALBASE_DATABASE_URL=url,
        DIALBASE_IMPORT_LEASE_SECONDS="2",
        DIALBASE_IMPORT_DIR=str(tmp_path / "imports"),
    )
    server = processes.start_server(tmp_path, name, env=env, workers=2)
    processes.wait_ready(server)
    return server


async def _progress(sessions, import_id: int) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    async with session_scope(sessions, read_only=True) as session:
        found = await session.get(Import, import_id)
        assert found is not None
        return found.status, found.next_row


async def test_a_server_killed_mid_import_finishes_it_after_a_restart_adding_nothing_twice(
    tmp_path: Path, database_url: str
):
    first = _start(tmp_path, "first", database_url)
    engine = create_engine(Settings(database_url=database_url))
    sessions = make_sessionmaker(engine)
    try:
        from tests.factories import make_account, make_campaign

        await make_account(sessions)
        await make_campaign(sessions)
        async with session_scope(sessions) as session:
            from dialbase.campaigns.models import Campaign

            campaign = await session.scalar(select(Campaign))
            assert campaign is not None
        acme = Acme(campaign.account_id, {"Sales": campaign.id})
        rows = [[f"+91981{i:07d}"] for i in range(ROWS)] + [
            [f"+91981{i:07d}"] for i in range(DUPLICATES)
        ]
        import_id = await queue(sessions, acme, ["PhoneNumber"], rows)
        deadline = time.monotonic() + 60
        while True:
            status, next_row = await _progress(sessions, import_id)
            assert status != "done", "the import finished before the kill: make it larger"
            if next_row >= 1000:
                break
            assert time.monotonic() < deadline, "the import did not start"
            time.sleep(0.01)
        processes.kill(first)
        first.proc.wait(10)
        processes.stop(first)
        status, killed_at = await _progress(sessions, import_id)
        assert status == "running" and 0 < killed_at < ROWS + DUPLICATES

        second = _start(tmp_path, "second", database_url)
        try:
            deadline = time.monotonic() + FINISH_SECONDS
            while (await _progress(sessions, import_id))[0] != "done":
                assert time.monotonic() < deadline, second.output()
                time.sleep(0.5)
            with httpx.Client(base_url=second.url, auth=("acme", "acme-secret-key")) as client:
                view = client.get(f"/v1/imports/{import_id}?limit=0").json()
        finally:
            processes.stop(second)
        assert (view["total"], view["added"], view["duplicates"], view["rejected"]) == (
            ROWS + DUPLICATES,
            ROWS,
            DUPLICATES,
            0,
        )
        async with session_scope(sessions, read_only=True) as session:
            leads = await session.scalar(select(func.count()).select_from(Lead))
            distinct = await session.scalar(select(func.count(func.distinct(Lead.phone_number))))
            results = await session.scalar(
                select(func.count()).where(ImportResult.import_id == import_id)
            )
        assert (leads, distinct, results) == (ROWS, ROWS, ROWS + DUPLICATES)
    finally:
        await engine.dispose()
