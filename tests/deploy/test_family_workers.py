"""The whole compatible family through one real server of three workers on PostgreSQL, with
its rate limits in Redis: each request goes to whichever worker takes the connection, so
every answer below must hold whatever worker a request lands on (a fresh connection per
request spreads them)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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

KEY = "family-key-1"
LEGACY = "/cloudAgentRestAPI/index.php/CloudAgent/CloudAgentAPI/addCamapaignData"
XML_HEAD = '<?xml version="1.0" encoding="utf-8"?>'


@dataclass
class Deployment:
    server: Server

    def call(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        # A new connection each time: the kernel hands it to any of the three workers.
        with httpx.Client(base_url=self.server.url, timeout=10) as client:
            return client.request(method, path, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """``serve --workers 3``; account "fam" (BASIC_AUTH) with the Progressive campaign
    "Sales" and the inbound campaign "Inbound"."""
    assert REDIS_URL
    name, url = create_pg_database()
    prefix = new_redis_prefix()
    folder: Path = tmp_path_factory.mktemp("family")
    server = None
    try:
        env = clean_env(DIALBASE_REDIS_PREFIX=prefix)
        run_cli("db", "upgrade", "--database-url", url)
        cli_env = clean_env(DIALBASE_DATABASE_URL=url)
        run_cli("account", "create", "--username", "fam", "--api-key", KEY, env=cli_env)
        for campaign, direction in (("Sales", "outbound"), ("Inbound", "inbound")):
            made = ("--name", campaign, "--dial-type", "Progressive", "--direction", direction)
            run_cli("campaign", "create", "--username", "fam", *made, env=cli_env)
        server = processes.start_server(
            folder, "family", "--database-url", url, "--redis-url", REDIS_URL, env=env, workers=3
        )
        processes.wait_ready(server)
        yield Deployment(server)
    finally:
        if server is not None:
            processes.stop(server)
        drop_pg_database(name)
        delete_redis_keys(prefix)


def _status(deployment: Deployment) -> dict[str, object]:
    response = deployment.call(
        "GET", "/ca_apis/campaignStatus", params={"userName": "fam", "campaignName": "Sales"},
        headers={"apiKey": KEY},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def _position(deployment: Deployment) -> str:
    body = _status(deployment)
    assert body["status"] == "success", body
    (campaign,) = body["message"]  # type: ignore[misc]
    assert campaign["CampaignName"] == "Sales" and campaign["UserName"] == "fam"
    return str(campaign["Position"])


def test_a_lead_added_by_either_endpoint_is_one_number_to_every_worker(
    deployment: Deployment,
) -> None:
    added = deployment.call(
        "POST", "/ca_apis/AddCampaignData",
        json={"userName": "fam", "campaignName": "Sales", "phoneNumber": "9100000001"},
        headers={"apiKey": KEY},
    )  # fmt: skip
    assert added.json() == {
        "status": "Success",
        "message": "SuccessFully Updated Progressive Campaign",
    }
    for _ in range(3):  # the older endpoint's duplicate check sees it, on any worker
        again = deployment.call(
            "GET", LEGACY,
            params={"api_key": KEY, "campaign_name": "Sales", "PhoneNumber": "9100000001",
                    "checkDuplicate": "true", "format": "json"},
        )  # fmt: skip
        assert again.status_code == 200
        assert again.json() == {"status": "SUCCESS", "message": "Number Already Exist"}
    xml = deployment.call(
        "POST", f"{LEGACY}/api_key/{KEY}/campaign_name/Sales/PhoneNumber/9100000002"
    )
    assert xml.status_code == 200
    assert xml.headers["content-type"].startswith("application/xml")
    assert xml.text == (
        f"{XML_HEAD}\n<xml><status>SUCCESS</status><message>Successfully Updated</message></xml>\n"
    )


def test_start_stop_and_status_agree_across_workers(deployment: Deployment) -> None:
    for action, word, position in (("Start", "started", "RUNNING"), ("stop", "stopped", "READY")):
        changed = deployment.call(
            "PUT", "/ca_apis/setCampaignStatus",
            json={"userName": "fam", "campaignName": "Sales", "action": action, "process": True},
            headers={"apiKey": KEY},
        )  # fmt: skip
        assert changed.json() == {
            "status": "SUCCESS",
            "message": f"SUCCESSFULLY UPDATED, Progressive was {word}",
        }
        for _ in range(3):
            assert _position(deployment) == position
    inbound = deployment.call(
        "PUT", "/ca_apis/setCampaignStatus",
        json={"userName": "fam", "campaignName": "Inbound", "action": "start", "process": "true"},
        headers={"apiKey": KEY},
    )  # fmt: skip
    assert inbound.json() == {
        "status": "failure",
        "message": "The selected campaign is not outbound",
    }


def test_a_deleted_lead_is_gone_for_every_worker(deployment: Deployment) -> None:
    number = "9100000077"
    body = {"userName": "fam", "campaignName": "Sales", "phoneNumber": number}
    first = deployment.call("POST", "/ca_apis/AddCampaignData", json=body, headers={"apiKey": KEY})
    assert first.json()["status"] == "Success"
    deleted = deployment.call(
        "DELETE", "/ca_apis/deleteCampaignData", json=body, headers={"apiKey": KEY}
    )
    assert deleted.json() == {"status": "Success", "message": "Deleted Successfully"}
    for _ in range(3):
        gone = deployment.call(
            "DELETE", "/ca_apis/deleteCampaignData", json=body, headers={"apiKey": KEY}
        )
        assert gone.json() == {"status": "Error", "message": "No Record Found"}
    # The number no longer counts as a duplicate: it can be added again, once.
    readded = deployment.call(
        "POST", "/ca_apis/AddCampaignData",
        json={**body, "checkDuplicate": True}, headers={"apiKey": KEY},
    )  # fmt: skip
    assert readded.json() == {
        "status": "Success",
        "message": "SuccessFully Updated Progressive Campaign",
    }
    bulk = deployment.call(
        "DELETE", "/ca_apis/DeleteBulkData",
        json={"userName": "fam", "phoneNumber": [int(number)], "campaignName": ["Sales"]},
        headers={"apiKey": KEY},
    )  # fmt: skip
    assert bulk.json() == {"status": "Success", "message": "Deleted Successfully", "deleted": 1}


def test_the_bulk_delete_budget_is_shared_by_the_workers(deployment: Deployment) -> None:
    """Two bulk deletes a minute per account, counted in Redis: a third on any worker is
    refused (the test before this one spent one of them, or none if run alone)."""
    body = {"userName": "fam", "phoneNumber": ["9100009999"], "campaignName": ["Sales"]}
    answers = [
        deployment.call("DELETE", "/ca_apis/DeleteBulkData", json=body, headers={"apiKey": KEY})
        for _ in range(3)
    ]
    limited = {"status": "Error", "message": "Max limit exceeded"}
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[-1].json() == limited
