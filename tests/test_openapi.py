"""The OpenAPI document says what the endpoints really answer."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from tests.dialer.helpers import AUTH, running_campaign

PROBLEM = "application/problem+json"
V1_ERRORS = ("400", "401", "422", "429", "503")


async def _document(client) -> dict:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def _v1_operations(document: dict) -> list[tuple[str, str, dict]]:
    found = [
        (path, method, operation)
        for path, operations in document["paths"].items()
        if path.startswith("/v1/")
        for method, operation in operations.items()
    ]
    # leases, outcome, stats, explain, forecast, start, stop, delete; the do-not-call list's 4;
    # an import, its results and its failed rows; the webhooks' 7 (account's and campaign's
    # put, get, delete; deliveries).
    assert len(found) == 22, sorted((path, method) for path, method, _ in found)
    return found


async def test_every_v1_operation_declares_its_errors_as_problem_json_only(client):
    for path, method, operation in _v1_operations(await _document(client)):
        responses = operation["responses"]
        for status in V1_ERRORS:
            assert status in responses, (method, path, status)
        for status, response in responses.items():
            if status.startswith("2"):
                continue
            assert list(response["content"]) == [PROBLEM], (method, path, status)
            declared = response["content"][PROBLEM]
            assert declared["schema"]["required"] == ["title", "status", "detail"]
            assert declared["example"]["title"] == HTTPStatus(int(status)).phrase


async def test_add_campaign_data_requires_no_key_and_lists_its_own_answers(client):
    document = await _document(client)
    request = document["components"]["schemas"]["AddCampaignDataRequest"]
    assert "phoneNumber" in request["properties"]
    assert request.get("required", []) == []
    responses = document["paths"]["/ca_apis/AddCampaignData"]["post"]["responses"]
    assert {"200", "400", "413", "429", "503"} <= set(responses)
    error = document["components"]["schemas"]["HTTPErrorBody"]
    assert set(error["required"]) == {"status", "message", "data"}
    for status, response in responses.items():
        assert list(response["content"]) == ["application/json"], status


async def test_add_campaign_data_without_a_phone_number_is_answered_200(client, sessionmaker):
    """What the schema says (no key required) is what the endpoint does."""
    await running_campaign(sessionmaker)
    body = {"userName": "acme", "campaignName": "Sales"}
    response = await client.post(
        "/ca_apis/AddCampaignData", json=body, headers={"apiKey": "acme-secret-key"}
    )
    assert response.status_code == 200
    assert response.json()["message"].startswith("phone number should be numeric")


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe\xfd", b'{"outcome": "busy", "note": "caf\xe9"}', b'{"outcome": ', b"[1, 2"],
    ids=["not-utf8", "latin1-text", "truncated", "unclosed-array"],
)
async def test_malformed_v1_bodies_answer_a_status_the_document_declares(client, body):
    document = await _document(client)
    headers = {"content-type": "application/json"}
    for path, method, operation in _v1_operations(document):
        if "requestBody" not in operation:
            continue
        url = path.replace("{campaign}", "Sales").replace("{lease_id}", "a" * 32)
        response = await client.request(method, url, content=body, headers=headers, auth=AUTH)
        assert str(response.status_code) in operation["responses"], (url, response.text)
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["title"] == HTTPStatus(response.status_code).phrase
