"""Behind a load balancer: the per-address rate limit counts the forwarded client address
only when the balancer is trusted (``--forwarded-allow-ips``)."""

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


def test_the_address_limit_counts_forwarded_addresses_from_trusted_proxies_only(servers, tmp_path):
    def env(name: str) -> dict[str, str]:
        database = f"sqlite:///{tmp_path}/{name}.db"  # a file each: see docs/deploy.md
        return clean_env(DIALBASE_DATABASE_URL=database, DIALBASE_IP_RATE_LIMIT="2")

    trusting = servers("trusting", env=env("trusting"))  # trusts 127.0.0.1 by default
    distrusting = servers(
        "distrusting", "--forwarded-allow-ips", "192.0.2.1", env=env("distrusting")
    )
    wait_all_ready([trusting, distrusting])
    clear_of_minute_edge()

    with httpx.Client(timeout=10) as client:
        for server in (trusting, distrusting):
            first = [_guess(client, server.url, "198.51.100.1") for _ in range(3)]
            assert first == [200, 200, 429]
        # Another client behind the balancer has its own budget only if the header is trusted.
        assert _guess(client, trusting.url, "198.51.100.2") == 200
        assert _guess(client, distrusting.url, "198.51.100.2") == 429
