"""The container files, tested without a Docker engine: the Dockerfile and compose.yaml are
read, and the image's start command runs here as written, with the environment they give it
(pointed at the test databases), until ``/readyz`` answers 200 and the image's health check
passes; the health check fails once the server is gone."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import typer.main
import yaml
from sqlalchemy.engine import make_url

from dialbase.cli import app
from dialbase.config import Settings
from tests.conftest import REDIS_URL, needs_postgres, needs_redis
from tests.deploy import processes
from tests.deploy.processes import Server, clean_env, free_port, stop, wait_ready

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 180.0  # four workers on a shared machine


@dataclass
class Dockerfile:
    base: str = ""
    user: str = ""
    env: dict[str, str] = field(default_factory=dict)
    healthcheck: list[str] = field(default_factory=list)
    healthcheck_options: str = ""
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    expose: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        text = re.sub(r"\\\n", " ", path.read_text())  # continuation lines
        found = cls()
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            instruction, _, rest = line.partition(" ")
            rest = rest.strip()
            match instruction.upper():
                case "FROM":
                    found.base = rest
                case "USER":
                    found.user = rest
                case "ENV":
                    found.env.update(
                        dict(item.split("=", 1) for item in shlex.split(rest))  # type: ignore[misc]
                    )
                case "HEALTHCHECK":
                    options, _, command = rest.partition("CMD ")
                    found.healthcheck_options = options
                    found.healthcheck = json.loads(command)
                case "ENTRYPOINT":
                    found.entrypoint = json.loads(rest)
                case "CMD":
                    found.cmd = json.loads(rest)
                case "EXPOSE":
                    found.expose = rest.split()
        return found


def read_compose(variables: dict[str, str]) -> dict[str, object]:
    """compose.yaml with ``${NAME:?message}`` and ``${NAME:-default}`` filled in (as Compose
    does: in the values, after the YAML is read)."""

    def fill(match: re.Match[str]) -> str:
        name, how, rest = match.group(1), match.group(2), match.group(3)
        if name in variables:
            return variables[name]
        if how == ":?":
            raise AssertionError(f"compose.yaml needs {name}: {rest}")
        return rest or ""

    def walk(value: object) -> object:
        if isinstance(value, str):
            return re.sub(r"\$\{(\w+)(:\?|:-)?([^}]*)\}", fill, value)
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    loaded: dict[str, object] = walk(yaml.safe_load((ROOT / "compose.yaml").read_text()))  # type: ignore[assignment]
    return loaded


DOCKERFILE = Dockerfile.read(ROOT / "Dockerfile")
COMPOSE = read_compose({"POSTGRES_PASSWORD": "pw-for-the-test"})
SERVICES: dict[str, dict[str, object]] = COMPOSE["services"]  # type: ignore[assignment]


def known_variables() -> set[str]:
    """Every DIALBASE_ variable dialbase reads: the settings, and ``serve``'s options."""
    names = {f"DIALBASE_{name.upper()}" for name in Settings.model_fields}
    serve = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    for param in serve.params:
        envvar = getattr(param, "envvar", None)
        names.update([envvar] if isinstance(envvar, str) else envvar or [])
    return names


def test_the_image_is_slim_runs_as_a_user_and_serves_on_all_addresses() -> None:
    assert re.fullmatch(r"python:3\.1[1-9]-slim", DOCKERFILE.base)
    assert DOCKERFILE.user and DOCKERFILE.user not in ("root", "0")
    assert DOCKERFILE.entrypoint[:2] == ["dialbase", "serve"]
    host = DOCKERFILE.entrypoint.index("--host")
    assert DOCKERFILE.entrypoint[host + 1] == "0.0.0.0"
    assert DOCKERFILE.expose == [DOCKERFILE.env["DIALBASE_PORT"]]
    assert "/readyz" in " ".join(DOCKERFILE.healthcheck)
    assert "--start-period" in DOCKERFILE.healthcheck_options


def test_compose_runs_dialbase_with_postgresql_and_redis() -> None:
    assert set(SERVICES) == {"dialbase", "postgres", "redis"}
    dialbase = SERVICES["dialbase"]
    assert dialbase["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    env: dict[str, str] = dialbase["environment"]  # type: ignore[assignment]
    database = make_url(env["DIALBASE_DATABASE_URL"])
    postgres: dict[str, dict[str, str]] = SERVICES["postgres"]  # type: ignore[assignment]
    assert (database.host, database.username, database.database, database.password) == (
        "postgres",
        postgres["environment"]["POSTGRES_USER"],
        postgres["environment"]["POSTGRES_DB"],
        postgres["environment"]["POSTGRES_PASSWORD"],
    )
    assert make_url(env["DIALBASE_REDIS_URL"]).host == "redis"
    assert dialbase["ports"] == [f"{DOCKERFILE.env['DIALBASE_PORT']}:8000"]


def test_every_variable_given_to_dialbase_is_a_real_setting() -> None:
    given = set(DOCKERFILE.env) | set(SERVICES["dialbase"]["environment"])  # type: ignore[arg-type]
    ours = {name for name in given if name.startswith("DIALBASE_")}
    assert ours and ours <= known_variables(), ours - known_variables()
    # Each value is one the settings take (they refuse a bad one).
    values = {**DOCKERFILE.env, **SERVICES["dialbase"]["environment"]}  # type: ignore[dict-item]
    fields = {k.removeprefix("DIALBASE_").lower(): v for k, v in values.items()}
    Settings(**{k: v for k, v in fields.items() if k in Settings.model_fields})


def run_image(name: str, command: list[str], env: dict[str, str], folder: Path) -> Server:
    """The image's command, as written (``dialbase`` is this environment's), in ``folder``."""
    log = folder / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            env=env,
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    workers = int(command[command.index("--workers") + 1]) if "--workers" in command else 1
    server = Server(name, int(env["DIALBASE_PORT"]), workers, log, proc, command)
    processes.LIVE.append(server)
    return server


def image_env(overrides: dict[str, str], folder: Path) -> dict[str, str]:
    env = clean_env(**overrides)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DIALBASE_PORT"] = str(free_port())  # the only change: a port free on this machine
    env["DIALBASE_IMPORT_DIR"] = str(folder / "imports")  # /data is the image's
    return env


def check_running(server: Server, env: dict[str, str]) -> dict[str, str]:
    """Ready, and the health check passes; after a stop it fails. /readyz's checks."""
    wait_ready(server, STARTUP_TIMEOUT)
    ready = httpx.get(f"{server.url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    health = subprocess.run(DOCKERFILE.healthcheck, env=env, capture_output=True, timeout=30)
    assert health.returncode == 0, health.stderr
    stop(server)
    health = subprocess.run(DOCKERFILE.healthcheck, env=env, capture_output=True, timeout=30)
    assert health.returncode != 0  # the check can fail: nothing answers any more
    checks: dict[str, str] = ready.json()["checks"]
    return checks


def test_the_image_alone_serves_its_sqlite_database(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'dialbase.db'}"  # the image's is /data/dialbase.db
    env = image_env({**DOCKERFILE.env, "DIALBASE_DATABASE_URL": database}, tmp_path)
    server = run_image("image", [*DOCKERFILE.entrypoint, *DOCKERFILE.cmd], env, tmp_path)
    assert check_running(server, env) == {"database": "ok"}
    assert json.loads(server.output().splitlines()[0])["level"] == "info"  # JSON logs


@needs_postgres
@needs_redis
def test_the_compose_service_serves_with_postgresql_and_redis(
    tmp_path: Path, pg_url: str, redis_prefix: str
) -> None:
    assert REDIS_URL
    service = SERVICES["dialbase"]
    settings = {
        **DOCKERFILE.env,
        **service["environment"],  # type: ignore[dict-item]
        "DIALBASE_DATABASE_URL": pg_url,
        "DIALBASE_REDIS_URL": REDIS_URL,
        "DIALBASE_REDIS_PREFIX": redis_prefix,
    }
    env = image_env(settings, tmp_path)
    command = [*DOCKERFILE.entrypoint, *service["command"]]  # type: ignore[misc]
    server = run_image("compose", command, env, tmp_path)
    assert check_running(server, env) == {"database": "ok", "redis": "ok"}
