"""``/metrics`` of real ``dialbase serve`` processes after a known load: the counts sent.

Three workers on PostgreSQL and Redis (each request on a new connection, so the kernel
spreads them over the workers; the test checks that more than one worker counted), and one
process on SQLite.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
from prometheus_client.mmap_dict import MmapedDict

from tests.conftest import REDIS_URL, needs_postgres, needs_redis
from tests.deploy.conftest import ServerFactory
from tests.deploy.processes import Server, clean_env, run_cli, wait_ready
from tests.ops.scrape import Scrape

ADD = "/ca_apis/AddCampaignData"
LEASES = "/v1/campaigns/{campaign:path}/leases"
OUTCOME = "/v1/leases/{lease_id}/outcome"
KEY = "metrics-key-1"
LIMITED_KEY = "metrics-key-2"


def call(server: Server, method: str, path: str, **kwargs: object) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=15) as client:  # a new connection each time
        return client.request(method, path, **kwargs)  # type: ignore[arg-type]


def setup_accounts(url: str) -> None:
    env = clean_env(DIALBASE_DATABASE_URL=url)
    run_cli("db", "upgrade", env=env)
    run_cli("account", "create", "--username", "m", "--api-key", KEY, env=env)
    run_cli("account", "create", "--username", "slow", "--api-key", LIMITED_KEY,
            "--rate-limit", "3", env=env)  # fmt: skip
    for user in ("m", "slow"):
        run_cli("campaign", "create", "--username", user, "--name", "Sales",
                "--dial-type", "Progressive", env=env)  # fmt: skip
    run_cli("campaign", "start", "--username", "m", "--name", "Sales", env=env)


def send_known_load(server: Server, adds: int, lease_calls: int) -> dict[str, int]:
    """``adds`` leads, 5 requests over a budget of 3 (2 refused), ``lease_calls`` leases of one
    lead each, an outcome for each (alternately no_answer and connected), 4 bad credentials."""
    for i in range(adds):
        body = {"userName": "m", "apiKey": KEY, "campaignName": "Sales",
                "phoneNumber": f"98100{i:05d}"}  # fmt: skip
        answer = call(server, "POST", ADD, json=body)
        assert answer.status_code == 200 and answer.json()["status"] == "Success", answer.text
    statuses = []
    for i in range(5):
        body = {"userName": "slow", "apiKey": LIMITED_KEY, "campaignName": "Sales",
                "phoneNumber": f"98200{i:05d}"}  # fmt: skip
        statuses.append(call(server, "POST", ADD, json=body).status_code)
    assert statuses == [200, 200, 200, 429, 429]
    outcomes = {"no_answer": 0, "connected": 0}
    for i in range(lease_calls):
        leased = call(server, "POST", "/v1/campaigns/Sales/leases", auth=("m", KEY))
        assert leased.status_code == 200, leased.text
        [lease] = leased.json()["leases"]
        outcome = "no_answer" if i % 2 == 0 else "connected"
        done = call(
            server, "POST", f"/v1/leases/{lease['leaseId']}/outcome",
            json={"outcome": outcome}, auth=("m", KEY),
        )  # fmt: skip
        assert done.status_code == 200, done.text
        outcomes[outcome] += 1
    for _ in range(4):
        refused = call(server, "POST", "/v1/campaigns/Sales/leases", auth=("m", "wrong-key"))
        assert refused.status_code == 401
    return outcomes


def check_counts(scrape: Scrape, adds: int, lease_calls: int, outcomes: dict[str, int]) -> None:
    requests = "dialbase_http_requests_total"
    assert scrape.value(requests, endpoint=ADD, method="POST", status="200") == adds + 3
    assert scrape.value(requests, endpoint=ADD, status="429") == 2
    assert scrape.value(requests, endpoint=LEASES, status="200") == lease_calls
    assert scrape.value(requests, endpoint=LEASES, status="401") == 4
    assert scrape.value(requests, endpoint=OUTCOME, status="200") == lease_calls
    latency = "dialbase_http_request_duration_seconds_count"
    assert scrape.value(latency, endpoint=ADD) == adds + 5
    assert scrape.value(latency, endpoint=LEASES) == lease_calls + 4
    # Every stored lead went through one committed batch.
    assert scrape.value("dialbase_write_batch_size_sum") == adds + 3
    batches = scrape.value("dialbase_write_batch_size_count")
    assert 1 <= batches <= adds + 3
    assert scrape.value("dialbase_write_batch_seconds_count") == batches
    assert scrape.value("dialbase_leases_total") == lease_calls
    for outcome, count in outcomes.items():
        assert scrape.value("dialbase_outcomes_total", outcome=outcome) == count
    assert scrape.value("dialbase_rate_limited_total", limit="account") == 2
    assert scrape.value("dialbase_database_errors_total") == 0
    assert scrape.value("dialbase_database_up") == 1
    # Leads by state: "m" has adds leads, a no_answer one is retry, a connected one done.
    leads = "dialbase_leads"
    assert (
        scrape.value(leads, account="m", campaign="Sales", state="retry") == outcomes["no_answer"]
    )
    assert scrape.value(leads, account="m", campaign="Sales", state="done") == outcomes["connected"]
    assert scrape.value(leads, account="m", campaign="Sales", state="pending") == adds - lease_calls
    assert scrape.value(leads, account="slow", campaign="Sales", state="pending") == 3
    assert scrape.value("dialbase_campaign_running", account="m", campaign="Sales") == 1
    assert scrape.value("dialbase_campaign_running", account="slow", campaign="Sales") == 0


def worker_metric_files(server: Server) -> tuple[Path, set[str]]:
    """The workers' PROMETHEUS_MULTIPROC_DIR (from their environment) and the process ids
    whose files there count answered requests."""
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text()
    folders = set()
    for pid in children.split():
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        folders |= {e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"PROMETHEUS_")}
    [folder] = folders
    served = set()
    for path in Path(folder).glob("counter_*.db"):
        values = MmapedDict.read_all_values_from_file(str(path))
        requests = sum(
            value
            for key, value, *_ in values
            if json.loads(key)[1] == "dialbase_http_requests_total"
        )
        if requests:
            served.add(path.stem.rsplit("_", 1)[1])
    return Path(folder), served


@needs_postgres
@needs_redis
def test_three_workers_count_exactly_the_load_sent(
    servers: ServerFactory, pg_url: str, redis_prefix: str
) -> None:
    assert REDIS_URL
    setup_accounts(pg_url)
    env = clean_env(DIALBASE_REDIS_PREFIX=redis_prefix, DIALBASE_METRICS_COUNT_SECONDS="0")
    server = servers("metrics3", "--database-url", pg_url, "--redis-url", REDIS_URL,
                     env=env, workers=3)  # fmt: skip
    wait_ready(server)
    outcomes = send_known_load(server, adds=30, lease_calls=6)
    folder, served = worker_metric_files(server)
    assert len(served) >= 2, "the load reached one worker only: nothing was summed"
    # Any worker answers the scrape; each answer holds every worker's counts.
    for _ in range(4):
        answer = call(server, "GET", "/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        check_counts(Scrape.parse(answer.text), 30, 6, outcomes)
    server.proc.terminate()
    server.proc.wait(30)
    assert not folder.exists(), "the metrics folder outlived the server"


def test_one_process_on_sqlite_counts_exactly_the_load_sent(
    servers: ServerFactory, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    setup_accounts(url)
    server = servers("metrics1", "--database-url", url,
                     env=clean_env(DIALBASE_METRICS_COUNT_SECONDS="0"))  # fmt: skip
    wait_ready(server)
    assert "PROMETHEUS_MULTIPROC_DIR" not in Path(f"/proc/{server.proc.pid}/environ").read_text(
        errors="replace"
    )
    outcomes = send_known_load(server, adds=12, lease_calls=4)
    check_counts(Scrape.parse(call(server, "GET", "/metrics").text), 12, 4, outcomes)


def test_metrics_dir_is_fresh_for_each_start(servers: ServerFactory, tmp_path: Path) -> None:
    """Two starts of a two-worker server: the second does not see the first's counts."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    setup_accounts(url)
    for round_ in range(2):
        server = servers(f"fresh{round_}", "--database-url", url, workers=2)
        wait_ready(server)
        for _ in range(3):
            assert call(server, "GET", "/readyz").status_code == 200
        scrape = Scrape.parse(call(server, "GET", "/metrics").text)
        assert scrape.value("dialbase_http_requests_total", endpoint="/readyz") == 3
        server.proc.terminate()
        server.proc.wait(30)
    assert not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
