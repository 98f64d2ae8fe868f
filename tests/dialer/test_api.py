"""The /v1 API's contract: authentication, status codes, problem+json for every error."""

from __future__ import annotations

import httpx

from dialbase.app import create_app
from tests.conftest import client_for_app
from tests.dialer.helpers import AUTH, add_leads, lease, report, running_campaign, stats
from tests.factories import campaign_running, make_account, make_campaign

PROBLEM = "application/problem+json"
OTHER = httpx.BasicAuth("other", "other-secret-key")


def assert_problem(response: httpx.Response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["type"] == "about:blank" and body["title"]
    for word in words:
        assert word in body["detail"]
    return body


async def _other_account(sessionmaker) -> None:
    await make_account(sessionmaker, "other", "other-secret-key")
    await make_campaign(sessionmaker, "Theirs", username="other")


async def test_a_lease_lists_lease_id_deadline_and_the_lead(client, sessionmaker):
    await running_campaign(sessionmaker)
    await add_leads(
        sessionmaker,
        {"phone_number": "9876500001", "name": "Asha", "priority": 4, "extra": {"city": "Pune"}},
    )
    response = await lease(client, leaseSeconds=60)
    assert response.status_code == 200
    [item] = response.json()["leases"]
    assert len(item["leaseId"]) == 32 and item["deadline"].endswith("Z")
    assert item["lead"] == {
        "phoneNumber": "9876500001",
        "name": "Asha",
        "priority": 4,
        "agentId": None,
        "skill": None,
        "extra": {"city": "Pune"},
        "attempt": 1,
        "callback": False,
    }


async def test_a_lease_request_may_leave_out_its_body(client, sessionmaker):
    await running_campaign(sessionmaker)
    await add_leads(sessionmaker, {"phone_number": "9876500030"}, {"phone_number": "9876500031"})
    response = await client.post("/v1/campaigns/Sales/leases", auth=AUTH)
    assert [i["lead"]["phoneNumber"] for i in response.json()["leases"]] == ["9876500030"]


async def test_wrong_credentials_answer_401_with_www_authenticate(client, sessionmaker):
    await running_campaign(sessionmaker)
    wrong = httpx.BasicAuth("acme", "not-the-key")
    for auth in (wrong, httpx.BasicAuth("nobody", "acme-secret-key")):
        response = await lease(client, auth=auth)
        assert_problem(response, 401, "wrong user name or API key")
        assert response.headers["www-authenticate"].startswith("Basic")


async def test_missing_or_malformed_credentials_answer_401(client, sessionmaker):
    await running_campaign(sessionmaker)
    missing = await client.post("/v1/campaigns/Sales/leases", json={})
    assert_problem(missing, 401, "HTTP Basic")
    assert missing.headers["www-authenticate"].startswith("Basic")
    bad = await client.post(
        "/v1/campaigns/Sales/leases", json={}, headers={"Authorization": "Basic %%%"}
    )
    assert_problem(bad, 401, "HTTP Basic")


async def test_an_unknown_campaign_answers_404(client, sessionmaker):
    await running_campaign(sessionmaker)
    for response in (
        await lease(client, "Nope"),
        await client.get("/v1/campaigns/Nope/stats", auth=AUTH),
        await client.post("/v1/campaigns/Nope/start", auth=AUTH),
    ):
        assert_problem(response, 404, "Nope")


async def test_another_accounts_campaign_answers_404_and_none_of_its_data(client, sessionmaker):
    await running_campaign(sessionmaker)
    await _other_account(sessionmaker)
    await add_leads(sessionmaker, {"phone_number": "9876500002"}, campaign="Theirs")
    for response in (
        await lease(client, "Theirs"),
        await client.get("/v1/campaigns/Theirs/stats", auth=AUTH),
        await client.post("/v1/campaigns/Theirs/start", auth=AUTH),
    ):
        assert_problem(response, 404)
        assert "9876500002" not in response.text
    assert not await campaign_running(sessionmaker, "Theirs")


async def test_an_unknown_or_foreign_lease_answers_404(client, sessionmaker):
    await running_campaign(sessionmaker)
    await _other_account(sessionmaker)
    await add_leads(sessionmaker, {"phone_number": "9876500003"})
    [item] = (await lease(client)).json()["leases"]
    assert_problem(await report(client, "f" * 32, "busy"), 404, "no lease")
    assert_problem(await report(client, item["leaseId"], "busy", auth=OTHER), 404, "no lease")
    assert (await report(client, item["leaseId"], "busy")).status_code == 200


async def test_a_lease_reported_twice_answers_409(client, sessionmaker):
    await running_campaign(sessionmaker)
    await add_leads(sessionmaker, {"phone_number": "9876500004"})
    [item] = (await lease(client)).json()["leases"]
    assert (await report(client, item["leaseId"], "connected")).status_code == 200
    assert_problem(await report(client, item["leaseId"], "busy"), 409, "already reported")


async def test_an_outcome_not_in_the_list_answers_422_naming_the_allowed_values(
    client, sessionmaker
):
    await running_campaign(sessionmaker)
    await add_leads(sessionmaker, {"phone_number": "9876500005"})
    [item] = (await lease(client)).json()["leases"]
    response = await report(client, item["leaseId"], "voicemail")
    names = ("connected", "no_answer", "busy", "failed", "invalid_number", "do_not_call")
    assert_problem(response, 422, "outcome", *names)


async def test_invalid_bodies_answer_problem_json_422(client, sessionmaker):
    await running_campaign(sessionmaker)
    assert_problem(await lease(client, count=0), 422, "count")
    assert_problem(await lease(client, count=101), 422, "count")
    assert_problem(await lease(client, leaseSeconds=0), 422, "leaseSeconds")
    assert_problem(await lease(client, agentID="typo"), 422, "agentID")
    not_json = await client.post(
        "/v1/campaigns/Sales/leases",
        content=b"{nope",
        headers={"content-type": "application/json"},
        auth=AUTH,
    )
    assert_problem(not_json, 422)


async def test_unknown_paths_and_methods_under_v1_answer_problem_json(client):
    assert_problem(await client.get("/v1/nothing-here"), 404)
    assert_problem(await client.get("/v1/campaigns/Sales/leases"), 405)


async def test_start_and_stop_change_the_state_the_compat_action_changes(client, sessionmaker):
    await make_account(sessionmaker)
    await make_campaign(sessionmaker)
    started = await client.post("/v1/campaigns/Sales/start", auth=AUTH)
    assert started.json() == {"campaign": "Sales", "running": True, "changed": True}
    assert await campaign_running(sessionmaker)
    again = await client.post("/v1/campaigns/Sales/start", auth=AUTH)
    assert again.json()["changed"] is False
    stopped = await client.post("/v1/campaigns/Sales/stop", auth=AUTH)
    assert stopped.json() == {"campaign": "Sales", "running": False, "changed": True}
    assert not await campaign_running(sessionmaker)


async def test_a_campaign_name_is_a_url_encoded_path_segment(client, sessionmaker):
    await running_campaign(sessionmaker, "Sales / Q4 #1")
    await add_leads(sessionmaker, {"phone_number": "9876500006"}, campaign="Sales / Q4 #1")
    response = await lease(client, "Sales%20%2F%20Q4%20%231")
    assert [i["lead"]["phoneNumber"] for i in response.json()["leases"]] == ["9876500006"]
    assert (await stats(client, "Sales%20%2F%20Q4%20%231"))["campaign"] == "Sales / Q4 #1"


async def test_stats_count_leads_by_state_attempts_and_connects(client, sessionmaker):
    await running_campaign(sessionmaker)
    await add_leads(
        sessionmaker,
        {"phone_number": "9876500010", "priority": 2},
        {"phone_number": "9876500011", "priority": 2},
        {"phone_number": "9876500012"},
        {"phone_number": "9876500013"},
        {"phone_number": "9876500014", "status": "expired"},
    )
    leases = (await lease(client, count=3)).json()["leases"]
    await report(client, leases[0]["leaseId"], "connected")
    await report(client, leases[1]["leaseId"], "busy")
    body = await stats(client)
    assert body["leads"] == {
        "total": 5,
        "pending": 1,
        "leased": 1,
        "retryScheduled": 1,
        "callbackScheduled": 0,
        "held": 0,
        "done": 1,
        "expired": 1,
    }
    assert (body["attempts"], body["connects"]) == (3, 1)
    assert body["leases"] == {
        "connected": 1,
        "no_answer": 0,
        "busy": 1,
        "failed": 0,
        "invalid_number": 0,
        "do_not_call": 0,
        "callback": 0,
        "lapsed": 0,
    }
    assert [p["priority"] for p in body["byPriority"]] == [2, 1]
    assert body["byPriority"][0]["leads"]["done"] == 1
    assert (body["maxAttempts"], body["retryDelaySeconds"]) == (3, 600)
    assert body["nextRetryAt"] is not None


async def test_every_v1_path_is_in_the_openapi_document_with_its_schemas(client):
    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    lease_op = paths["/v1/campaigns/{campaign}/leases"]["post"]
    assert "#/components/schemas/LeaseRequest" in str(lease_op["requestBody"]["content"])
    assert "LeaseList" in str(lease_op["responses"]["200"])
    assert "OutcomeRequest" in str(paths["/v1/leases/{lease_id}/outcome"]["post"])
    for action in ("stats", "start", "stop"):
        assert f"/v1/campaigns/{{campaign}}/{action}" in paths
    assert "Problem" in str(lease_op["responses"]["409"])
    assert "HTTPBasic" in schema["components"]["securitySchemes"]


async def test_nul_characters_never_reach_the_database(client, sessionmaker):
    await running_campaign(sessionmaker)
    assert_problem(await lease(client, "Sa%00les"), 404)
    assert_problem(await report(client, "%00" * 3, "busy"), 404)
    assert_problem(await lease(client, agentId="a\u0000b"), 422, "NUL")
    nul_user = await lease(client, auth=httpx.BasicAuth("ac\x00me", "acme-secret-key"))
    assert_problem(nul_user, 401)
    await add_leads(sessionmaker, {"phone_number": "9876500020"})
    [item] = (await lease(client)).json()["leases"]
    assert_problem(await report(client, item["leaseId"], "busy", note="x\u0000"), 422, "NUL")


async def test_failed_authentications_count_against_the_address_budget(backend):
    """Key guessing on /v1 is throttled like AddCampaignData's checks 1-3: 429 past the budget."""
    app = create_app(backend.settings(ip_rate_limit=2))
    async with app.lifespan(), client_for_app(app) as client:
        await running_campaign(app.services.sessionmaker)
        wrong = httpx.BasicAuth("acme", "not-the-key")
        first = [await lease(client, auth=wrong) for _ in range(2)]
        third = await lease(client, auth=wrong)
        allowed = await lease(client)
    assert [r.status_code for r in first] == [401, 401]
    assert_problem(third, 429, "too many failed authentications")
    assert 1 <= int(third.headers["retry-after"]) <= 60
    assert allowed.status_code == 200, allowed.text
