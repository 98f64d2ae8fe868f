"""``dialbase db backup``: a copy taken from a running server under load restores to a
database holding every lead acknowledged before the backup began; clear one-line refusals."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import needs_postgres
from tests.deploy.conftest import ServerFactory
from tests.deploy.processes import clean_env, dialbase_command, run_cli, stop, wait_ready

ADD = "/ca_apis/AddCampaignData"
KEY = "backup-key-1"


def dialbase(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*dialbase_command(), *args],
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def make_database(url: str) -> dict[str, str]:
    env = clean_env(DIALBASE_DATABASE_URL=url)
    run_cli("db", "upgrade", env=env)
    run_cli("account", "create", "--username", "b", "--api-key", KEY,
            "--rate-limit", "1000000", env=env)  # fmt: skip
    run_cli("campaign", "create", "--username", "b", "--name", "Sales",
            "--dial-type", "Progressive", env=env)  # fmt: skip
    return env


def exported_numbers(env: dict[str, str]) -> list[str]:
    out = run_cli("leads", "export", "--username", "b", "--campaign", "Sales", env=env)
    return [lead["phoneNumber"] for lead in json.loads(out)]


class Load:
    """Threads adding leads with numbers never sent before; what was acknowledged, in order."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.acknowledged: list[str] = []
        self.failures: list[str] = []
        self._numbers = itertools.count(9_100_000_000)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def snapshot(self) -> set[str]:
        with self._lock:
            return set(self.acknowledged)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                with self._lock:
                    number = str(next(self._numbers))
                body = {"userName": "b", "apiKey": KEY, "campaignName": "Sales",
                        "phoneNumber": number}  # fmt: skip
                answer = client.post(ADD, json=body)
                with self._lock:
                    if answer.status_code == 200 and answer.json()["status"] == "Success":
                        self.acknowledged.append(number)
                    else:
                        self.failures.append(f"{answer.status_code} {answer.text}")

    def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.snapshot()) < count:
            assert time.monotonic() < deadline, f"only {len(self.acknowledged)} leads stored"
            time.sleep(0.05)


def test_a_backup_under_load_restores_every_lead_acknowledged_before_it(
    servers: ServerFactory, tmp_path: Path
) -> None:
    database = tmp_path / "live.db"
    env = make_database(f"sqlite:///{database}")
    server = servers("backup", "--database-url", f"sqlite:///{database}", workers=2)
    wait_ready(server)
    backup = tmp_path / "copy.db"
    with Load(server.url) as load:
        load.wait_for(300)
        before = load.snapshot()  # acknowledged before the backup began
        done = dialbase("db", "backup", str(backup), env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"backed up {database} to {backup} (")
        load.wait_for(len(load.snapshot()) + 200)  # the server kept writing meanwhile
    assert not load.failures, load.failures[:3]
    assert not Path(f"{backup}.part").exists()
    stop(server)

    # The restore procedure of docs/deploy.md: server stopped, the file and its -wal and
    # -shm files replaced by the backup.
    for leftover in (Path(f"{database}-wal"), Path(f"{database}-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copyfile(backup, database)
    restored = exported_numbers(env)
    assert before <= set(restored), f"{len(before - set(restored))} acknowledged leads lost"
    assert len(restored) == len(set(restored))  # none doubled
    assert set(restored) <= set(load.acknowledged) | {
        str(n) for n in range(9_100_000_000, 9_100_000_000 + 100_000)
    }
    assert len(restored) < len(load.acknowledged)  # a copy from the middle of the load

    again = servers("restored", "--database-url", f"sqlite:///{database}")
    wait_ready(again)
    body = {"userName": "b", "apiKey": KEY, "campaignName": "Sales", "phoneNumber": "9199999999"}
    assert httpx.post(again.url + ADD, json=body, timeout=10).json()["status"] == "Success"
    stop(again)
    assert len(exported_numbers(env)) == len(restored) + 1


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def test_an_existing_file_is_replaced_only_with_force(tmp_path: Path) -> None:
    env = make_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    target = tmp_path / "copy.db"
    target.write_bytes(b"an older backup")
    message = one_line_error(dialbase("db", "backup", str(target), env=env))
    assert message == f"error: {target} exists: give --force to replace it"
    assert target.read_bytes() == b"an older backup"
    Path(f"{target}-wal").write_bytes(b"stale")  # would be read as part of the new copy
    assert dialbase("db", "backup", str(target), "--force", env=env).returncode == 0
    assert not Path(f"{target}-wal").exists()
    copy_env = clean_env(DIALBASE_DATABASE_URL=f"sqlite:///{target}")
    assert "b" in run_cli("account", "list", env=copy_env).split()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--database-url", "postgresql://postgres@127.0.0.1:5432/postgres"], "pg_dump"),
        (["--database-url", "sqlite:///{tmp}/missing.db"], "there is no database at"),
        (["--database-url", "sqlite:///{tmp}/not-a-database.db"], "file is not a database"),
    ],
)
def test_refusals_are_one_line_and_write_nothing(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    (tmp_path / "not-a-database.db").write_bytes(b"x" * 4096)
    target = tmp_path / "copy.db"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert expected in one_line_error(dialbase("db", "backup", str(target), *args))
    assert not target.exists() and not Path(f"{target}.part").exists()
    assert not (tmp_path / "missing.db").exists()  # not created by the attempt


def test_the_target_must_be_a_file_in_an_existing_folder(tmp_path: Path) -> None:
    env = make_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    folder_error = one_line_error(dialbase("db", "backup", str(tmp_path), env=env))
    assert folder_error == f"error: {tmp_path} is a folder: name the backup file"
    missing = tmp_path / "nowhere" / "copy.db"
    assert "there is no folder" in one_line_error(dialbase("db", "backup", str(missing), env=env))
    itself = one_line_error(
        dialbase("db", "backup", str(tmp_path / "db.sqlite"), "--force", env=env)
    )
    assert "is the database itself" in itself


@needs_postgres
def test_postgresql_backups_point_at_pg_dump(pg_url: str) -> None:
    env = clean_env(DIALBASE_DATABASE_URL=pg_url)
    message = one_line_error(dialbase("db", "backup", "/tmp/never-written.db", env=env))
    assert "pg_dump" in message
    assert not Path("/tmp/never-written.db").exists()
