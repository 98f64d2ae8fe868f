"""A newer token supersedes the older one at once on every worker: three real server
processes on one PostgreSQL database, rate limits in Redis. No DIALBASE_TOKEN_SECRET: the
servers share the secret the first of them created and kept in the database."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import REDIS_URL, needs_postgres, needs_redis
from tests.deploy import processes
from tests.deploy.conftest import (
    create_pg_database,
    delete_redis_keys,
    drop_pg_database,
    new_redis_prefix,
)
from tests.deploy.processes import Server, clean_env, run_cli

pytestmark = [needs_postgres, needs_redis]

KEY = "tok-secret-key"
BURST_KEY = "burst-secret-key"
TOKEN_URL = "/ca_apis/CAToken/generateToken"
ADD_URL = "/ca_apis/AddCampaignData"
STATUS_URL = "/ca_apis/campaignStatus"
STORED = {"status": "Success", "message": "SuccessFully Updated Progressive Campaign"}
INVALID_TOKEN = {"status": "false", "message": "Invalid Token", "data": None}


@dataclass
class Cluster:
    servers: list[Server]

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three servers of one worker each; account "tok" (TOKEN_AUTH) with campaign "Sales"."""
    assert REDIS_URL
    name, url = create_pg_database()
    prefix = new_redis_prefix()
    folder = tmp_path_factory.mktemp("tokens")
    started: list[Server] = []
    try:
        env = clean_env(DIALBASE_REDIS_PREFIX=prefix)
        flags = ("--database-url", url, "--redis-url", REDIS_URL)
        run_cli("db", "upgrade", "--database-url", url)
        for i in range(3):
            started.append(processes.start_server(folder, f"tokens-{i}", *flags, env=env))
        cli_env = clean_env(DIALBASE_DATABASE_URL=url)
        run_cli("account", "create", "--username", "tok", "--api-key", KEY,
                "--auth-mode", "TOKEN_AUTH", env=cli_env)  # fmt: skip
        run_cli("campaign", "create", "--username", "tok", "--name", "Sales",
                "--dial-type", "Progressive", env=cli_env)  # fmt: skip
        run_cli("account", "create", "--username", "burst", "--api-key", BURST_KEY,
                "--auth-mode", "TOKEN_AUTH", env=cli_env)  # fmt: skip
        processes.wait_all_ready(started)
        yield Cluster(started)
    finally:
        processes.stop_all(started)
        drop_pg_database(name)
        delete_redis_keys(prefix)


def _generate(url: str) -> str:
    response = httpx.post(url + TOKEN_URL, json={"userName": "tok", "apiKey": KEY}, timeout=10)
    assert response.status_code == 200, response.text
    data = response.json()
    assert set(data) == {"token", "message"} and data["message"] == ""
    return str(data["token"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _add(url: str, token: str, phone: str) -> dict[str, Any]:
    body = {"userName": "tok", "campaignName": "Sales", "phoneNumber": phone}
    response = httpx.post(url + ADD_URL, json=body, headers=_bearer(token), timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _status(url: str, token: str) -> dict[str, Any]:
    params = {"userName": "tok", "campaignName": "Sales"}
    response = httpx.get(url + STATUS_URL, params=params, headers=_bearer(token), timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _is_ready(answer: dict[str, Any]) -> bool:
    """The campaign's status, as the contract shapes it (its id is the database's)."""
    [position] = answer["message"]
    campaign_id = position.pop("CampaignID")
    expected = {"CampaignName": "Sales", "UserName": "tok", "Position": "READY"}
    return answer["status"] == "success" and campaign_id.isdigit() and position == expected


def test_a_new_token_supersedes_the_old_one_at_once_on_every_worker(cluster: Cluster):
    first, second, third = cluster.urls
    old = _generate(first)
    for i, url in enumerate(cluster.urls):  # every worker has seen (and cached) the old token
        assert _add(url, old, f"900000000{i}") == STORED
        assert _is_ready(_status(url, old))

    new = _generate(second)

    for url in (first, third):  # no wait: the very next request
        assert _add(url, old, "9111111111") == INVALID_TOKEN
        assert _status(url, old) == INVALID_TOKEN
    assert _add(second, old, "9111111112") == INVALID_TOKEN
    for i, url in enumerate(cluster.urls):
        assert _add(url, new, f"920000000{i}") == STORED
        assert _is_ready(_status(url, new))


def test_tokens_generated_at_once_on_every_worker_leave_exactly_one_current(cluster: Cluster):
    with ThreadPoolExecutor(3) as pool:
        tokens = list(pool.map(_generate, cluster.urls))
    assert len(set(tokens)) == 3
    accepted = [t for t in tokens if _add(cluster.urls[0], t, "9300000000") == STORED]
    assert len(accepted) == 1
    for i, url in enumerate(cluster.urls):
        assert _add(url, accepted[0], f"930000001{i}") == STORED
        for token in tokens:
            if token != accepted[0]:
                assert _add(url, token, f"930000002{i}") == INVALID_TOKEN


def test_sixteen_requests_at_once_on_three_workers_get_exactly_ten_tokens(cluster: Cluster):
    """The hourly limit is counted in the database under the account's row lock: exact
    across processes."""
    body = {"userName": "burst", "apiKey": BURST_KEY}

    def ask(url: str) -> httpx.Response:
        return httpx.post(url + TOKEN_URL, json=body, timeout=30)

    urls = [cluster.urls[i % 3] for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(ask, urls))
    assert sorted(r.status_code for r in responses) == [200] * 10 + [429] * 6
    assert len({r.json()["token"] for r in responses if r.status_code == 200}) == 10
    for refused in (r for r in responses if r.status_code == 429):
        assert refused.json()["message"].startswith(
            "Token limit reached: at most 10 tokens an hour; the next can be generated at "
        )
        assert 3500 <= int(refused.headers["Retry-After"]) <= 3601  # whole seconds, rounded up
