"""``dialbase campaign stats`` and ``dialbase dialer simulate`` (against a real server)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from dialbase.cli import app
from dialbase.config import Settings
from dialbase.db import create_engine, make_sessionmaker, session_scope
from dialbase.dialer.models import Lease
from dialbase.leads.models import Lead
from tests.dialer.helpers import add_leads, minutes_from_now, running_campaign, set_campaign

DIALBASE = str(Path(sys.executable).with_name("dialbase"))
LEADS = 40


async def _seed(settings: Settings, *, running: bool = True) -> None:
    engine = create_engine(settings)
    sessions = make_sessionmaker(engine)
    await running_campaign(sessions)
    await set_campaign(sessions, max_attempts=2, retry_delay=0, running=running)
    specs = [{"phone_number": f"97000{n:05d}", "priority": n % 3} for n in range(LEADS)]
    specs += [{"phone_number": "9700099999", "expires_at": minutes_from_now(-5)}]
    await add_leads(sessions, *specs)
    await engine.dispose()


def test_campaign_stats_prints_the_api_shape_as_json(backend):
    settings = backend.settings()
    asyncio.run(_seed(settings))
    args = ["campaign", "stats", "--username", "acme", "--name", "Sales"]
    result = CliRunner().invoke(app, [*args, "--json", "--database-url", settings.database_url])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["leads"]["total"] == LEADS + 1
    assert (body["leads"]["pending"], body["leads"]["expired"]) == (LEADS, 1)
    assert (body["maxAttempts"], body["retryDelaySeconds"], body["running"]) == (2, 0, True)
    plain = CliRunner().invoke(app, [*args, "--database-url", settings.database_url])
    assert "leads.expired" in plain.output and "priority 2:" in plain.output


def test_campaign_stats_prints_a_dash_for_what_is_not_there(backend):
    settings = backend.settings()
    asyncio.run(_seed(settings))
    args = ["campaign", "stats", "--username", "acme", "--name", "Sales"]
    plain = CliRunner().invoke(app, [*args, "--database-url", settings.database_url])
    assert plain.exit_code == 0, plain.output
    assert "None" not in plain.output
    fields = dict(line.split(None, 1) for line in plain.output.splitlines() if "  " in line)
    assert fields["nextRetryAt"].strip() == "-"  # no retry scheduled


def test_campaign_stats_of_an_unknown_campaign_fails_cleanly(backend):
    settings = backend.settings()
    asyncio.run(_seed(settings))
    args = ["campaign", "stats", "--username", "acme", "--name", "Nope"]
    result = CliRunner().invoke(app, [*args, "--database-url", settings.database_url])
    assert result.exit_code == 1
    assert "no campaign named 'Nope'" in result.output and "Traceback" not in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALBASE_")}
    return env | values


@pytest.fixture
def server(backend, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """``dialbase serve --workers 2`` on the test's database; yields its URL."""
    port = _free_port()
    log = (tmp_path / "server.log").open("wb")
    command = [DIALBASE, "serve", "--port", str(port), "--workers", "2"]
    env = _env(DIALBASE_DATABASE_URL=backend.database_url)
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
        log.close()


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError("the server did not start")


def _simulate(url: str, *extra: str, key: str = "acme-secret-key") -> subprocess.CompletedProcess:
    command = [DIALBASE, "dialer", "simulate", "--url", url, "--username", "acme"]
    command += ["--campaign", "Sales", "--speed", "1000", "--seed", "1", *extra]
    env = _env(DIALBASE_API_KEY=key, COLUMNS="120")
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)


async def _leases_per_lead(settings: Settings) -> tuple[dict[str, str], dict[str, list[int]]]:
    engine = create_engine(settings)
    async with session_scope(make_sessionmaker(engine)) as session:
        statuses = dict((await session.execute(select(Lead.phone_number, Lead.status))).all())
        attempts: dict[str, list[int]] = {phone: [] for phone in statuses}
        rows = await session.execute(
            select(Lead.phone_number, Lease.attempt).join(Lease, Lease.lead_id == Lead.id)
        )
        for phone, attempt in rows:
            attempts[phone].append(attempt)
    await engine.dispose()
    return statuses, attempts


def test_simulate_drains_the_campaign_over_http_and_prints_a_summary(backend, server):
    settings = backend.settings()
    asyncio.run(_seed(settings, running=False))
    done = _simulate(server, "--agents", "8", "--start")
    assert done.returncode == 0, done.stdout + done.stderr
    for heading in ("Priority", "Leased", "Connected", "Retried", "Expired", "outcomes:"):
        assert heading in done.stdout
    statuses, attempts = asyncio.run(_leases_per_lead(settings))
    assert statuses.pop("9700099999") == "expired" and attempts.pop("9700099999") == []
    assert set(statuses.values()) == {"done"}
    for phone, seen in attempts.items():
        assert sorted(seen) == list(range(1, len(seen) + 1)) and 1 <= len(seen) <= 2, phone


def test_simulate_explains_what_stops_it(backend, server):
    asyncio.run(_seed(backend.settings(), running=False))
    stopped = _simulate(server)
    assert stopped.returncode == 1 and "is stopped: pass --start" in stopped.stderr
    wrong = _simulate(server, key="wrong-key-here")
    assert wrong.returncode == 1 and "401" in wrong.stderr and "wrong user name" in wrong.stderr
    gone = _simulate(f"http://127.0.0.1:{_free_port()}")
    assert gone.returncode == 1 and "cannot reach dialbase" in gone.stderr
    for run in (stopped, wrong, gone):
        assert "Traceback" not in run.stderr + run.stdout
