"""JSON logs of a real server through a full run: every line one JSON object, every answered
request one line with its id, account, endpoint, status and time, and none of the API keys,
tokens or phone numbers the run used anywhere in the log (both backends)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKENDS, REDIS_URL
from tests.deploy.conftest import ServerFactory
from tests.deploy.processes import Server, clean_env, run_cli, stop, wait_ready

ADD = "/ca_apis/AddCampaignData"
TOKEN = "/ca_apis/CAToken/generateToken"
LEGACY = "/cloudAgentRestAPI/index.php/CloudAgent/CloudAgentAPI/addCamapaignData"
BULK = "/cloudAgentRestAPI/index.php/AddCampaignBulkDataV4/addBulkData/format/json"
BASIC_KEY = "logkey-basic-7f3a9c"
TOKEN_KEY = "logkey-token-52e1d8"
WRONG_KEY = "logkey-wrong-c0ffee"
# Every number sent, each in a different request.
NUMBERS = [f"98765{i:05d}" for i in range(1, 13)]


def call(server: Server, method: str, path: str, **kwargs: object) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=15) as client:
        return client.request(method, path, **kwargs)  # type: ignore[arg-type]


def database_for(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
    if name == "sqlite":
        return ["--database-url", f"sqlite:///{tmp_path / 'logs.db'}"]
    assert REDIS_URL
    url = request.getfixturevalue("pg_url")
    return ["--database-url", url, "--redis-url", REDIS_URL]


def full_run(server: Server) -> tuple[str, dict[str, str]]:
    """Every kind of request, with credentials in every place they can be sent; the bearer
    token it was given and the request ids it chose, by what they were for."""
    n = iter(NUMBERS)
    ids: dict[str, str] = {}
    body = {"userName": "basic", "campaignName": "Sales", "phoneNumber": next(n)}
    ok = call(server, "POST", ADD, json={**body, "apiKey": BASIC_KEY},
              headers={"X-Request-ID": "run-add-body-key"})  # fmt: skip
    assert ok.json()["status"] == "Success" and ok.headers["x-request-id"] == "run-add-body-key"
    ids["add"] = "run-add-body-key"
    ok = call(server, "POST", ADD, json={**body, "phoneNumber": next(n)},
              headers={"apiKey": BASIC_KEY})  # fmt: skip
    assert ok.json()["status"] == "Success"
    ids["generated"] = ok.headers["x-request-id"]
    duplicate = {**body, "apiKey": BASIC_KEY, "checkDuplicate": True}
    assert call(server, "POST", ADD, json=duplicate).status_code == 200
    refused = call(server, "POST", ADD, json={**body, "apiKey": WRONG_KEY})
    assert refused.json()["message"] == "Invalid User Details"
    assert call(server, "POST", ADD, content=b"{not json " + next(n).encode()).status_code == 400
    # Bearer tokens.
    made = call(server, "POST", TOKEN, json={"userName": "tok", "apiKey": TOKEN_KEY})
    token = made.json()["token"]
    bearer = {"Authorization": f"Bearer {token}", "X-Request-ID": "run-bearer"}
    by_token = {"userName": "tok", "campaignName": "Sales", "phoneNumber": next(n)}
    ok = call(server, "POST", ADD, headers=bearer, json=by_token)
    assert ok.json()["status"] == "Success", ok.text
    ids["bearer"] = "run-bearer"
    # The older endpoint: key in the query string, in the path, in a form.
    legacy = {"api_key": BASIC_KEY, "campaign_name": "Sales", "format": "json"}
    ok = call(server, "GET", LEGACY, params={**legacy, "PhoneNumber": next(n)},
              headers={"X-Request-ID": "run-legacy"})  # fmt: skip
    assert ok.json()["status"] == "SUCCESS", ok.text
    ids["legacy"] = "run-legacy"
    path = f"{LEGACY}/api_key/{BASIC_KEY}/campaign_name/Sales/PhoneNumber/{next(n)}/format/json"
    assert call(server, "GET", path).json()["status"] == "SUCCESS"
    assert call(server, "POST", LEGACY, data={**legacy, "PhoneNumber": next(n)}).status_code == 200
    wrong = f"{LEGACY}/api_key/{WRONG_KEY}/campaign_name/Sales/PhoneNumber/{next(n)}/format/json"
    assert call(server, "GET", wrong).status_code == 200
    # Bulk.
    rows = {"map": ["PhoneNumber", "Name"], "data": [[next(n), "Asha"], [next(n), "Ravi"]]}
    bulk = {"apiKey": BASIC_KEY, "userName": "basic", "campaignName": "Sales", "bulkData": rows}
    queued = call(server, "POST", BULK, json=bulk)
    assert queued.status_code == 200, queued.text
    # Leases, outcomes, do-not-call, refusals of /v1.
    leased = call(server, "POST", "/v1/campaigns/Sales/leases", auth=("basic", BASIC_KEY),
                  headers={"X-Request-ID": "run-lease"})  # fmt: skip
    [lease] = leased.json()["leases"]
    ids["lease"] = "run-lease"
    note = f"asked not to be called: {lease['lead']['phoneNumber']}"
    outcome = {"outcome": "do_not_call", "note": note}
    path = f"/v1/leases/{lease['leaseId']}/outcome"
    done = call(server, "POST", path, auth=("basic", BASIC_KEY), json=outcome)
    assert done.status_code == 200, done.text
    dnc = call(server, "PUT", f"/v1/dnc/{next(n)}", auth=("basic", BASIC_KEY),
               headers={"X-Request-ID": "run-dnc"})  # fmt: skip
    assert dnc.status_code == 201, dnc.text
    ids["dnc"] = "run-dnc"
    assert call(server, "PUT", f"/v1/dnc/{next(n)}", auth=("basic", WRONG_KEY)).status_code == 401
    assert call(server, "GET", f"/nowhere/{NUMBERS[0]}?apiKey={BASIC_KEY}").status_code == 404
    insane = "x" * 500
    assert (
        call(server, "GET", "/healthz", headers={"X-Request-ID": insane}).headers["x-request-id"]
        != insane
    )
    assert call(server, "GET", "/metrics").status_code == 200
    assert next(n, None) is None  # every number was sent
    return token, ids


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_json_logs_of_a_full_run_hold_no_key_token_or_number(
    backend_name: str, servers: ServerFactory, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    database = database_for(backend_name, tmp_path, request)
    prefix = f"dialbase-logs-{tmp_path.name}"
    cli_env = clean_env(DIALBASE_DATABASE_URL=database[1])
    run_cli("db", "upgrade", env=cli_env)
    run_cli("account", "create", "--username", "basic", "--api-key", BASIC_KEY, env=cli_env)
    run_cli("account", "create", "--username", "tok", "--api-key", TOKEN_KEY,
            "--auth-mode", "TOKEN_AUTH", env=cli_env)  # fmt: skip
    for user in ("basic", "tok"):
        run_cli("campaign", "create", "--username", user, "--name", "Sales",
                "--dial-type", "Progressive", env=cli_env)  # fmt: skip
    run_cli("campaign", "start", "--username", "basic", "--name", "Sales", env=cli_env)
    env = clean_env(DIALBASE_LOG_FORMAT="json", DIALBASE_REDIS_PREFIX=prefix,
                    DIALBASE_ALLOW_PRIVATE_CALLBACKS="true")  # fmt: skip
    server = servers("logs", *database, "--access-log", env=env, workers=2)
    wait_ready(server)
    token, ids = full_run(server)
    stop(server)
    log = server.output()

    secrets = [BASIC_KEY, TOKEN_KEY, WRONG_KEY, token, *NUMBERS]
    secrets += [number[1:] for number in NUMBERS]  # no number even without its first digit
    leaked = [secret for secret in secrets if secret in log]
    assert not leaked, f"in the log: {leaked}\n{log}"

    entries = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert all(isinstance(e, dict) and {"time", "level", "message"} <= set(e) for e in entries)
    by_id = {e["request_id"]: e for e in entries if e.get("logger") == "dialbase.access"}
    expected = {
        "add": ("basic", "POST", ADD, 200),
        "generated": ("basic", "POST", ADD, 200),
        "bearer": ("tok", "POST", ADD, 200),
        "legacy": ("basic", "GET", LEGACY, 200),
        "lease": ("basic", "POST", "/v1/campaigns/{campaign:path}/leases", 200),
        "dnc": ("basic", "PUT", "/v1/dnc/{number}", 201),
    }
    for what, (account, method, endpoint, status) in expected.items():
        entry = by_id[ids[what]]
        assert (entry["account"], entry["method"], entry["endpoint"], entry["status"]) == (
            account, method, endpoint, status,
        ), what  # fmt: skip
        assert entry["duration_ms"] >= 0
    unmatched = [e for e in by_id.values() if e["status"] == 404]
    assert [e["endpoint"] for e in unmatched] == ["unmatched"]
    assert "account" not in unmatched[0]
    refused = [e for e in by_id.values() if e["status"] == 401]
    assert [e["endpoint"] for e in refused] == ["/v1/dnc/{number}"]
