"""Behind a load balancer: the per-address failed-authentication budget counts the
forwarded client address only when the balancer is trusted (``--forwarded-allow-ips`` or
``DIALBASE_FORWARDED_ALLOW_IPS``); by default no proxy is trusted."""

from __future__ import annotations

import httpx

from tests.deploy.processes import clean_env, wait_all_ready
from tests.deploy.traffic import ADD, add_body, clear_of_minute_edge

INVALID_USER = {"status": "false", "message": "Invalid User Details", "data": None}


def _guess(client: httpx.Client, url: str, forwarded_for: str) -> int:
    response = client.post(
        url + ADD,
        json=add_body("9444444444", apiKey="not-the-key"),
        headers={"X-Forwarded-For": forwarded_for},
    )
    assert response.status_code == 429 or response.json() == INVALID_USER
    return response.status_code


def test_a_spoofed_forwarded_address_per_request_does_not_escape_the_budget_by_default(
    servers, tmp_path
):
    env = clean_env(
        DIALBASE_DATABASE_URL=f"sqlite:///{tmp_path}/default.db", DIALBASE_IP_RATE_LIMIT="2"
    )
    server = servers("default", env=env)  # no --forwarded-allow-ips: trusts no proxy
    wait_all_ready([server])
    clear_of_minute_edge()

    with httpx.Client(timeout=10) as client:
        codes = [_guess(client, server.url, f"198.51.100.{i}") for i in range(1, 6)]
    assert codes == [200, 200, 429, 429, 429]


def test_the_forwarded_address_is_counted_when_the_proxy_is_trusted(servers, tmp_path):
    def env(name: str, **settings: str) -> dict[str, str]:
        database = f"sqlite:///{tmp_path}/{name}.db"  # a file each: see docs/deploy.md
        return clean_env(DIALBASE_DATABASE_URL=database, DIALBASE_IP_RATE_LIMIT="2", **settings)

    by_flag = servers("by-flag", "--forwarded-allow-ips", "127.0.0.1", env=env("by-flag"))
    by_setting = servers(
        "by-setting", env=env("by-setting", DIALBASE_FORWARDED_ALLOW_IPS="127.0.0.1")
    )
    other_proxy = servers(
        "other-proxy", "--forwarded-allow-ips", "192.0.2.1", env=env("other-proxy")
    )
    wait_all_ready([by_flag, by_setting, other_proxy])
    clear_of_minute_edge()

    with httpx.Client(timeout=10) as client:
        for server in (by_flag, by_setting, other_proxy):
            first = [_guess(client, server.url, "198.51.100.1") for _ in range(3)]
            assert first == [200, 200, 429], server.name
        # Another client behind the balancer has its own budget only if the header is trusted.
        assert _guess(client, by_flag.url, "198.51.100.2") == 200
        assert _guess(client, by_setting.url, "198.51.100.2") == 200
        assert _guess(client, other_proxy.url, "198.51.100.2") == 429
