"""A real ``dialbase serve`` (two workers, one SQLite file) takes a CSV upload over HTTP
and adds every row exactly once; the rejected rows come back from failed.csv."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import httpx

from tests.deploy import processes
from tests.deploy.processes import clean_env, wait_ready
from tests.deploy.traffic import seed_in_process, sqlite_numbers

ROWS = 20_000
AUTH = ("acme", "acme-secret-key")


def _csv() -> bytes:
    lines = ["PhoneNumber,Name,Priority,Region"]
    for i in range(ROWS):
        number = "bad" if i % 100 == 99 else f"98{i:08d}"
        lines.append(f"{number},Lead {i},{1 + i % 5},north")
    lines.append("9800000000,Repeat,1,south")  # a duplicate of row 0
    return ("\n".join(lines) + "\n").encode()


def test_a_real_server_imports_an_upload_once(sqlite_template: Path, tmp_path: Path) -> None:
    path = tmp_path / "leads.db"
    shutil.copyfile(sqlite_template, path)
    asyncio.run(seed_in_process(f"sqlite:///{path}"))
    env = clean_env(
        DIALBASE_DATABASE_URL=f"sqlite:///{path}", DIALBASE_IMPORT_DIR=str(tmp_path / "imports")
    )
    server = processes.start_server(tmp_path, "upload", env=env, workers=2)
    try:
        wait_ready(server)
        with httpx.Client(base_url=server.url, auth=AUTH, timeout=60) as client:
            response = client.post(
                "/v1/campaigns/Sales/imports",
                files={"file": ("leads.csv", _csv(), "text/csv")},
                data={"checkDuplicate": "true"},
            )
            assert response.status_code == 202, response.text
            location = response.headers["location"]
            deadline = time.monotonic() + 120
            view = client.get(location).json()
            while view["status"] != "done" and time.monotonic() < deadline:
                time.sleep(0.2)
                view = client.get(location).json()
            assert view["status"] == "done", view
            bad = ROWS // 100
            assert (view["total"], view["added"], view["duplicates"], view["rejected"]) == (
                ROWS + 1,
                ROWS - bad,
                1,
                bad,
            )
            failed = client.get(location + "/failed.csv")
            assert failed.status_code == 200
            lines = failed.text.splitlines()
            assert lines[0] == "PhoneNumber,Name,Priority,Region,reason"
            assert len(lines) == 1 + bad
            assert lines[1] == (
                "bad,Lead 99,5,north,phone number should be numeric and must be between 3 to"
                " 16 digits and allows prefix +"
            )
    finally:
        processes.stop(server)
    numbers = sqlite_numbers(path)
    assert len(numbers) == len(set(numbers)) == ROWS - ROWS // 100
    assert list((tmp_path / "imports" / "uploads").iterdir()) == []
