"""``dialbase leads export``: a reader that leaves early, conflicting options."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from dialbase.config import Settings
from dialbase.db import create_engine, make_sessionmaker
from tests.cli.conftest import cli
from tests.deploy.processes import clean_env, dialbase_command
from tests.dialer.helpers import add_leads, running_campaign

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
LEADS = 3000  # far more output than a pipe holds
EXPORT = ["leads", "export", "--username", "acme", "--campaign", "Sales"]


async def _seed(settings: Settings) -> None:
    engine = create_engine(settings)
    sessions = make_sessionmaker(engine)
    await running_campaign(sessions)
    await add_leads(sessions, *({"phone_number": f"97000{n:05d}"} for n in range(LEADS)))
    await engine.dispose()


@pytest.mark.parametrize("format", ["json", "csv"])
def test_export_into_a_pipe_closed_early_exits_quietly(backend, format: str):
    asyncio.run(_seed(backend.settings()))
    command = [*dialbase_command(), *EXPORT, "--format", format]
    env = clean_env(DIALBASE_DATABASE_URL=backend.database_url)
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()  # as `| head -1` does
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) in (0, 141, -13)
    assert first.strip() and stderr == ""


def test_export_refuses_conflicting_format_options(backend):
    url = backend.database_url
    result = cli(*EXPORT, "--format", "csv", "--json", "--database-url", url)
    assert result.exit_code == 2
    assert "--json and --format csv conflict" in result.stderr
    same = cli(*EXPORT, "--format", "json", "--json", "--database-url", url)
    assert same.exit_code == 1 and "no account named 'acme'" in same.stderr


def test_export_writes_every_lead_as_csv(backend):
    asyncio.run(_seed(backend.settings()))
    result = cli(*EXPORT, "--format", "csv", "--database-url", backend.database_url)
    assert result.exit_code == 0 and len(result.stdout.strip().splitlines()) == LEADS + 1
