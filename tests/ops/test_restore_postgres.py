"""A PostgreSQL database restored to an older state (pg_dump, then pg_restore --clean) under
a running server: its workers notice without a restart (the configuration revision of the
restored database is not the one their caches hold)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx

from tests.conftest import needs_postgres
from tests.deploy.conftest import ServerFactory
from tests.deploy.processes import Server, clean_env, run_cli, wait_ready

pytestmark = needs_postgres

ADD = "/ca_apis/AddCampaignData"
OLD_KEY = "restore-key-old"
NEW_KEY = "restore-key-new"


def add(server: Server, key: str, number: str) -> dict[str, object]:
    body = {"userName": "r", "apiKey": key, "campaignName": "Sales", "phoneNumber": number}
    with httpx.Client(base_url=server.url, timeout=15) as client:  # any worker
        answer = client.post(ADD, json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def numbers(env: dict[str, str]) -> set[str]:
    out = run_cli("leads", "export", "--username", "r", "--campaign", "Sales", env=env)
    return {lead["phoneNumber"] for lead in json.loads(out)}


def test_workers_notice_a_restore_to_an_older_state(
    servers: ServerFactory, pg_url: str, tmp_path: Path
) -> None:
    env = clean_env(DIALBASE_DATABASE_URL=pg_url)
    run_cli("db", "upgrade", env=env)
    run_cli("account", "create", "--username", "r", "--api-key", OLD_KEY, env=env)
    run_cli("campaign", "create", "--username", "r", "--name", "Sales",
            "--dial-type", "Progressive", env=env)  # fmt: skip
    run_cli("campaign", "start", "--username", "r", "--name", "Sales", env=env)
    server = servers("restore", "--database-url", pg_url, workers=2)
    wait_ready(server)
    for i in range(4):  # every worker caches the account read with the old key
        assert add(server, OLD_KEY, f"981000000{i}")["status"] == "Success"

    dump = tmp_path / "dialbase.dump"
    subprocess.run(["pg_dump", "-Fc", "-f", str(dump), pg_url], check=True, timeout=60)

    run_cli("account", "rotate-key", "--username", "r", "--api-key", NEW_KEY, env=env)
    with httpx.Client(base_url=server.url, timeout=15) as client:
        leased = client.post("/v1/campaigns/Sales/leases", auth=("r", NEW_KEY))
    [lease] = leased.json()["leases"]
    for i in range(4):
        assert add(server, NEW_KEY, f"982000000{i}")["status"] == "Success"
        assert add(server, OLD_KEY, f"983000000{i}")["message"] == "Invalid User Details"

    restore = ["pg_restore", "--clean", "--if-exists", "--single-transaction", "-d", pg_url]
    subprocess.run([*restore, str(dump)], check=True, timeout=120)

    # The restored database is the one of the dump: the old key again, the later leads gone.
    assert numbers(env) == {f"981000000{i}" for i in range(4)}
    for i in range(6):
        assert add(server, OLD_KEY, f"984000000{i}")["status"] == "Success"
        assert add(server, NEW_KEY, f"985000000{i}")["message"] == "Invalid User Details"
    # A lease handed out after the dump is unknown.
    with httpx.Client(base_url=server.url, timeout=15) as client:
        path = f"/v1/leases/{lease['leaseId']}/outcome"
        outcome = client.post(path, json={"outcome": "busy"}, auth=("r", OLD_KEY))
    assert outcome.status_code == 404, outcome.text
    # Numbers stored after the dump are new again for the duplicate check.
    for i in range(4):
        body = {"userName": "r", "apiKey": OLD_KEY, "campaignName": "Sales",
                "phoneNumber": f"982000000{i}", "checkDuplicate": True}  # fmt: skip
        with httpx.Client(base_url=server.url, timeout=15) as client:
            answer = client.post(ADD, json=body).json()
        assert answer == {
            "status": "Success",
            "message": "SuccessFully Updated Progressive Campaign",
        }
    assert numbers(env) == {f"98{k}000000{i}" for k in (1, 2) for i in range(4)} | {
        f"984000000{i}" for i in range(6)
    }
