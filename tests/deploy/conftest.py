"""Fixtures for tests that run real ``dialbase`` processes.

- ``servers``: starts servers for one test and always stops them (process groups).
- ``pg_url``: a fresh, empty PostgreSQL database per test, dropped afterwards.
- ``redis_prefix``: a Redis key prefix of one's own; its keys are deleted afterwards.
A failing test's report shows the output of every server still running.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL, RUN_ID, pg_admin, pg_database_url
from tests.deploy import processes
from tests.deploy.processes import Server

ServerFactory = Callable[..., Server]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in processes.LIVE:
            report.sections.append((f"dialbase server {server.name} output", server.output()))


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[ServerFactory]:
    """``servers(name, *serve_args, env=..., workers=N)`` starts one; all stop at the end."""
    started: list[Server] = []

    def start(name: str, *args: str, **options: object) -> Server:
        server = processes.start_server(tmp_path, name, *args, **options)  # type: ignore[arg-type]
        started.append(server)
        return server

    try:
        yield start
    finally:
        processes.stop_all(started)


def create_pg_database() -> tuple[str, str]:
    """A fresh empty database: its name and URL (``serve`` and the CLI migrate it)."""
    name = f"dialbase_t_{RUN_ID}_{uuid.uuid4().hex[:10]}"
    pg_admin(f'CREATE DATABASE "{name}"')
    return name, pg_database_url(name)


def drop_pg_database(name: str) -> None:
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    name, url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


def new_redis_prefix() -> str:
    return f"dialbase-test-{RUN_ID}-{uuid.uuid4().hex[:8]}"


def delete_redis_keys(prefix: str) -> None:
    if not REDIS_URL:
        return
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = new_redis_prefix()
    try:
        yield prefix
    finally:
        delete_redis_keys(prefix)
