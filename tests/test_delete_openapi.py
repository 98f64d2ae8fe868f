"""The OpenAPI document describes the deleting operations as they really are: a JSON
body read by hand on the compatible ones, every documented answer, the errors."""

from __future__ import annotations


async def _operation(client, path: str) -> dict:  # type: ignore[no-untyped-def]
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json()["paths"][path]["delete"])


async def test_the_compatible_deletes_declare_their_bodies_and_answers(client):
    one = await _operation(client, "/ca_apis/deleteCampaignData")
    bulk = await _operation(client, "/ca_apis/DeleteBulkData")
    for operation in (one, bulk):
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert {"userName", "phoneNumber", "campaignName"} <= set(schema["properties"])
        assert sorted(operation["responses"]) == ["200", "400", "413", "429", "503"]
    examples = one["responses"]["200"]["content"]["application/json"]["examples"]
    assert examples["deleted"]["value"] == {"status": "Success", "message": "Deleted Successfully"}
    assert examples["no_record"]["value"] == {"status": "Error", "message": "No Record Found"}
    examples = bulk["responses"]["200"]["content"]["application/json"]["examples"]
    assert examples["limit"]["value"] == {"status": "Error", "message": "Max limit exceeded"}
    assert examples["deleted"]["value"] == {
        "status": "Success",
        "message": "Deleted Successfully",
        "deleted": 3,
    }
    assert (
        bulk["requestBody"]["content"]["application/json"]["schema"]["properties"]["phoneNumber"][
            "maxItems"
        ]
        == 100
    )


async def test_the_v1_delete_declares_its_query_and_problems(client):
    operation = await _operation(client, "/v1/campaigns/{campaign}/leads")
    assert {p["name"] for p in operation["parameters"]} == {"campaign", "phoneNumber", "name"}
    assert {"401", "404", "422", "503"} <= set(operation["responses"])
    assert list(operation["responses"]["404"]["content"]) == ["application/problem+json"]
