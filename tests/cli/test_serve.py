"""``dialbase serve``: settings checked before anything starts; readable help."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dialbase import server
from tests.cli.conftest import cli, one_line_error
from tests.deploy.processes import clean_env, dialbase_command


def _run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*dialbase_command(), *args],
        env=clean_env(**env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("workers", ["1", "3"])
def test_serve_with_a_bad_redis_url_exits_1_with_one_line(tmp_path: Path, workers: str):
    done = _run("serve", "--redis-url", "foo://bar", "--workers", workers, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "DIALBASE_REDIS_URL" in lines[0], done.stderr
    assert list(tmp_path.iterdir()) == []  # refused before the database was touched


def test_a_bad_redis_url_from_the_environment_is_refused_too(tmp_path: Path):
    done = _run("serve", cwd=tmp_path, DIALBASE_REDIS_URL="http://cache:6379")
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1


def test_serve_help_shows_every_option_name_whole_at_80_columns(tmp_path: Path):
    done = _run("serve", "--help", cwd=tmp_path, COLUMNS="80")
    assert done.returncode == 0
    for option in ("--database-url", "--host", "--port", "--workers", "--redis-url", "--demo",
                   "--access-log", "--forwarded-allow-ips"):  # fmt: skip
        assert option in done.stdout, option
    assert "…" not in done.stdout
    assert max(len(line) for line in done.stdout.splitlines()) <= 80


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Calls of ``server.run`` (nothing is served)."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(server, "run", lambda settings, **kw: calls.append(kw | {"s": settings}))
    monkeypatch.delenv("DIALBASE_FORWARDED_ALLOW_IPS", raising=False)
    return calls


def test_serve_trusts_no_proxy_unless_told(tmp_path: Path, started, monkeypatch):
    monkeypatch.setattr(os, "environ", dict(os.environ))  # serve exports its settings
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert cli("serve", "--database-url", url).exit_code == 0
    assert started[-1]["forwarded_allow_ips"] is None
    trusted = cli("serve", "--database-url", url, "--forwarded-allow-ips", "10.0.0.1")
    assert trusted.exit_code == 0 and started[-1]["forwarded_allow_ips"] == "10.0.0.1"


def test_serve_creates_the_schema_before_starting_and_says_so(tmp_path, started, monkeypatch):
    monkeypatch.setattr(os, "environ", dict(os.environ))
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = cli("serve", "--database-url", url, "--redis-url", "redis://127.0.0.1:1/0")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("created dialbase's schema")
    assert started[0]["s"].redis_url == "redis://127.0.0.1:1/0"


def test_serve_with_a_bad_redis_url_never_starts_the_server(tmp_path, started):
    result = cli("serve", "--database-url", f"sqlite:///{tmp_path / 'x.db'}", "--redis-url", "x")
    assert result.exit_code == 1 and "DIALBASE_REDIS_URL" in one_line_error(result)
    assert started == []
