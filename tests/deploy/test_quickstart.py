"""The README's quick start, on a real ``dialbase serve --demo`` process."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

import httpx

from tests.deploy.processes import Server, stop, wait_ready

CURL = re.compile(r"curl -s -X POST (\S+) -H '([^']*)' -H 'apiKey: ([^']+)' -d '(\{.*\})'")


def _curl_line(server: Server, timeout: float = 30.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in server.output().splitlines():
            if (found := CURL.search(line)) is not None:
                return found
        time.sleep(0.1)
    raise AssertionError(f"no curl line printed:\n{server.output()}")


def _add(match: re.Match[str]) -> httpx.Response:
    url, _, key, body = match.groups()
    headers = {"Content-Type": "application/json", "apiKey": key}
    return httpx.post(url, content=body.encode(), headers=headers, timeout=10)


def test_demo_run_again_prints_the_same_working_key(servers, tmp_path: Path):
    first = servers("demo", "--demo", cwd=tmp_path)
    wait_ready(first)
    key = _curl_line(first).group(3)
    stop(first)
    key_file = tmp_path / "dialbase.db.demo-key"
    assert key_file.read_text().strip() == key
    assert key_file.stat().st_mode & 0o077 == 0  # readable by its owner only

    second = servers("demo-again", "--demo", cwd=tmp_path)
    wait_ready(second)
    again = _curl_line(second)
    assert again.group(3) == key
    assert f"API key:   {key}" in second.output()
    assert _add(again).json()["status"] == "Success"


def test_demo_prints_a_curl_line_whose_request_is_stored(servers, tmp_path: Path):
    server = servers("demo", "--demo", cwd=tmp_path)  # like the README: ./dialbase.db
    wait_ready(server)
    url, content_type, key, body = _curl_line(server).groups()
    assert url == f"{server.url}/ca_apis/AddCampaignData"
    assert content_type == "Content-Type: application/json"

    response = httpx.post(
        url,
        content=body.encode(),
        headers={"Content-Type": "application/json", "apiKey": key},
        timeout=10,
    )

    assert response.status_code == 200
    assert response.json() == {
        "status": "Success",
        "message": "SuccessFully Updated Progressive Campaign",
    }
    with sqlite3.connect(tmp_path / "dialbase.db") as conn:
        rows = conn.execute("SELECT phone_number, name FROM leads").fetchall()
    assert ("9876543210", "Asha Rao") in rows
