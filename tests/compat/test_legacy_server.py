"""The older add endpoint and campaign status/start-stop against a real ``dialbase serve``
process over HTTP (SQLite file, set up with the CLI): the requests real clients send,
byte for byte where it matters (a GET carrying a JSON body, a raw form, path segments)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy import processes
from tests.deploy.processes import Server, clean_env, run_cli

KEY = "acme-legacy-key-0001"
LEGACY = "/cloudAgentRestAPI/index.php/CloudAgent/CloudAgentAPI/addCamapaignData"
DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'


def xml(status: str, message: str) -> str:
    return f"{DECLARATION}<xml><status>{status}</status><message>{message}</message></xml>\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder: Path = tmp_path_factory.mktemp("legacy-server")
    url = f"sqlite:///{folder / 'dialbase.db'}"
    env = clean_env(DIALBASE_DATABASE_URL=url)
    run_cli("db", "upgrade", env=env)
    run_cli("account", "create", "--username", "acme", "--api-key", KEY, env=env)
    run_cli(
        "campaign", "create", "--username", "acme", "--name", "Sales & Co",
        "--dial-type", "Predictive", env=env,
    )  # fmt: skip
    started = processes.start_server(folder, "legacy", env=clean_env(DIALBASE_DATABASE_URL=url))
    try:
        processes.wait_ready(started)
        yield started
    finally:
        processes.stop(started)


def test_a_get_with_a_query_string_answers_xml(server: Server) -> None:
    query = {"api_key": KEY, "campaign_name": "Sales & Co", "PhoneNumber": "9876500001"}
    response = httpx.get(server.url + LEGACY, params=query)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/xml"
    assert response.text == xml("SUCCESS", "Successfully Updated")


def test_path_segments_with_an_encoded_campaign_name_answer_json(server: Server) -> None:
    path = f"{LEGACY}/api_key/{KEY}/campaign_name/Sales%20%26%20Co/PhoneNumber/9876500002"
    response = httpx.get(server.url + path + "/format/json")
    assert response.status_code == 200
    assert response.json() == {"status": "SUCCESS", "message": "Successfully Updated"}


def test_a_raw_urlencoded_post_with_action_start(server: Server) -> None:
    content = (
        f"api_key={KEY}&campaign_name=Sales+%26+Co&PhoneNumber=%2B919876500003"
        "&action=start&Name=&city=Pune"
    )
    response = httpx.post(
        server.url + LEGACY,
        content=content.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert response.text == xml("SUCCESS", "Successfully Updated, Predictive was started")


def test_a_multipart_post_then_its_duplicate(server: Server) -> None:
    parts = {
        "api_key": (None, KEY),
        "campaign_name": (None, "Sales & Co"),
        "PhoneNumber": (None, "9876500004"),
        "checkDuplicate": (None, "true"),
        "format": (None, "json"),
    }
    answers = [httpx.post(server.url + LEGACY + ".json", files=parts) for _ in range(2)]
    assert [response.status_code for response in answers] == [200, 200]
    assert [response.json() for response in answers] == [
        {"status": "SUCCESS", "message": "Successfully Updated"},
        {"status": "SUCCESS", "message": "Number Already Exist"},
    ]


def test_an_unknown_key_and_a_put(server: Server) -> None:
    response = httpx.get(server.url + LEGACY + "/api_key/nope")
    assert response.text == xml("FAIL", "No User Found")
    response = httpx.put(server.url + LEGACY)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


def test_start_then_campaign_status_get_with_a_json_body_then_stop(server: Server) -> None:
    body = b'{"userName": "acme", "campaignName": "Sales & Co"}'
    headers = {"apiKey": KEY, "Content-Type": "application/json"}
    start = {"userName": "acme", "campaignName": "Sales & Co", "action": "start", "process": True}
    with httpx.Client(base_url=server.url) as client:
        started = client.put("/ca_apis/setCampaignStatus", json=start, headers={"APIKEY": KEY})
        status = client.request("GET", "/ca_apis/campaignStatus", content=body, headers=headers)
        stop = client.put(
            "/ca_apis/setCampaignStatus",
            json={
                "userName": "acme",
                "campaignName": "Sales & Co",
                "action": "Stop",
                "process": "true",
            },
            headers={"apikey": KEY},
        )
        after = client.get(
            "/ca_apis/campaignStatus",
            params={"userName": "acme", "campaignName": "Sales & Co", "apiKey": KEY},
        )
    assert started.json() == {
        "status": "SUCCESS",
        "message": "SUCCESSFULLY UPDATED, Predictive was started",
    }
    assert status.status_code == 200
    [element] = status.json()["message"]
    assert element["CampaignName"] == "Sales & Co" and element["UserName"] == "acme"
    assert element["Position"] == "RUNNING"
    assert element["CampaignID"].isdigit()
    assert stop.json() == {
        "status": "SUCCESS",
        "message": "SUCCESSFULLY UPDATED, Predictive was stopped",
    }
    assert after.json()["message"][0]["Position"] == "READY"  # its leads are pending
