"""Real servers on one SQLite file: a success survives SIGKILL; several workers stay exact."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy import processes
from tests.deploy.processes import Server, clean_env, wait_ready
from tests.deploy.traffic import (
    ALREADY,
    STORED,
    add_body,
    adds_until_killed,
    answers,
    burst,
    seed_in_process,
    sqlite_numbers,
)

REQUESTS = 300


@pytest.fixture(scope="module")
def seeded_file(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file holding account ``acme`` and its campaign ``Sales``."""
    path = tmp_path_factory.mktemp("seeded") / "seeded.db"
    shutil.copyfile(sqlite_template, path)
    asyncio.run(seed_in_process(f"sqlite:///{path}"))
    return path


def _copy(seeded_file: Path, folder: Path) -> tuple[Path, dict[str, str]]:
    path = folder / "leads.db"
    shutil.copyfile(seeded_file, path)
    return path, clean_env(DIALBASE_DATABASE_URL=f"sqlite:///{path}")


async def test_every_success_is_in_the_file_after_sigkill_mid_stream(
    servers, seeded_file: Path, tmp_path: Path
):
    path, env = _copy(seeded_file, tmp_path)
    server = servers("durable", env=env)
    wait_ready(server)
    stream = await adds_until_killed(server, REQUESTS, check_duplicate=False)
    assert stream.killed_after, "the server was never killed"
    assert not stream.other, [(r.status_code, r.text) for r in stream.other[:3]]
    stored = set(sqlite_numbers(path))
    missing = [n for n in stream.succeeded if n not in stored]
    assert not missing, f"{len(missing)} answered successes are not in the file: {missing[:5]}"


@pytest.fixture(scope="module")
def three_workers(
    seeded_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Path]]:
    folder = tmp_path_factory.mktemp("workers")
    path, env = _copy(seeded_file, folder)
    server = processes.start_server(folder, "sqlite-workers", env=env, workers=3)
    try:
        wait_ready(server)
        yield server, path
    finally:
        processes.stop(server)


async def test_three_workers_on_one_file_store_exactly_one_of_a_racing_number(three_workers):
    server, path = three_workers
    number = "9111111111"
    bodies = [add_body(number, checkDuplicate=True) for _ in range(150)]

    replies = answers(await burst([server.url], bodies))

    assert {r.status_code for r in replies} == {200}
    bodies_seen = [r.json() for r in replies]
    assert bodies_seen.count(STORED) == 1
    assert bodies_seen.count(ALREADY) == 149
    assert sqlite_numbers(path).count(number) == 1


async def test_three_workers_on_one_file_store_every_lead_they_answer(three_workers):
    server, path = three_workers
    numbers = [f"8{i:09d}" for i in range(150)]

    replies = answers(await burst([server.url], [add_body(n) for n in numbers]))

    assert [(r.status_code, r.json()) for r in replies] == [(200, STORED)] * len(numbers)
    stored = sqlite_numbers(path)
    assert sorted(n for n in stored if n in set(numbers)) == sorted(numbers)
