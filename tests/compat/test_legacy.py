"""The older add endpoint (``.../CloudAgentAPI/addCamapaignData``): every check in order with
its exact XML and JSON answer, the requests real clients send (query strings, forms,
multipart, path segments, ``.json``), precedence, limits, rate limits shared with
AddCampaignData, exact duplicates under concurrency, and a database lost mid-write."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dialbase.accounts.service import rotate_api_key, update_account
from dialbase.db import session_scope
from dialbase.errors import DatabaseUnavailable
from tests.compat.helpers import client_for, running_app
from tests.conftest import Backend
from tests.factories import all_leads, leads_of, make_account, make_campaign, running_campaigns

URL = "/cloudAgentRestAPI/index.php/CloudAgent/CloudAgentAPI/addCamapaignData"
ADD_URL = "/ca_apis/AddCampaignData"
KEY = "acme-secret-key"
DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'


def xml(status: str, message: str) -> str:
    return f"{DECLARATION}<xml><status>{status}</status><message>{message}</message></xml>\n"


def params(**fields: Any) -> dict[str, Any]:
    """A valid request for acme's "Sales"; ``None`` drops a parameter."""
    base: dict[str, Any] = {"api_key": KEY, "campaign_name": "Sales", "PhoneNumber": "9876543210"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


async def get_xml(client, **fields: Any) -> str:  # type: ignore[no-untyped-def]
    response = await client.get(URL, params=params(**fields))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/xml"
    return response.text


async def get_json(client, **fields: Any) -> Any:  # type: ignore[no-untyped-def]
    response = await client.get(URL, params=params(format="json", **fields))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


@pytest.fixture
async def accounts(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    """acme (BASIC_AUTH): "Sales" (Progressive), "Agents" (agent-wise Predictive), "Skills"
    (skill-wise Preview), "Inbound"; tok (TOKEN_AUTH); off (NONE)."""
    await make_account(sessionmaker)
    await make_campaign(sessionmaker)
    await make_campaign(
        sessionmaker, "Agents", dial_type="Predictive", routing="agentwise", agents=["A100"]
    )
    await make_campaign(
        sessionmaker, "Skills", dial_type="Preview", routing="skillwise", skills=["hindi"]
    )
    await make_campaign(sessionmaker, "Inbound", direction="inbound")
    await make_account(sessionmaker, "tok", "tok-secret-key", auth_mode="TOKEN_AUTH")
    await make_campaign(sessionmaker, "Sales", username="tok")
    await make_account(sessionmaker, "off", "off-secret-key", auth_mode="NONE")


pytestmark = pytest.mark.usefixtures("accounts")

# (parameters, status, message): the checks in order. Every request asks to start the
# campaign, so that an applied action would show.
CHECKS = [
    ({"api_key": None}, "FAIL", "No User Found"),  # 1
    ({"api_key": "   "}, "FAIL", "No User Found"),
    ({"api_key": "not-a-key", "campaign_name": None}, "FAIL", "No User Found"),
    ({"api_key": "tok-secret-key"}, "FAIL", "Invalid action."),  # 2
    ({"api_key": "off-secret-key", "PhoneNumber": None}, "FAIL", "Invalid action."),
    ({"campaign_name": None, "PhoneNumber": None}, "FAIL", "Campaign Name is Invalid"),  # 3
    ({"campaign_name": " "}, "FAIL", "Campaign Name is Invalid"),
    ({"campaign_name": "Nope"}, "FAIL", "Campaign Name is Invalid"),
    (
        {"campaign_name": "Inbound", "PhoneNumber": None},
        "FAIL",
        "The selected campaign is not outbound",
    ),  # 4  # fmt: skip
    ({"PhoneNumber": None, "Priority": "x"}, "FAIL", "Phone Number is Empty!"),  # 5
    ({"PhoneNumber": "  "}, "FAIL", "Phone Number is Empty!"),
    ({"PhoneNumber": "98-76", "Priority": "x"}, "FAIL", "Phone Number is Invalid!"),  # 6
    ({"PhoneNumber": "12"}, "FAIL", "Phone Number is Invalid!"),
    ({"PhoneNumber": "+12345678901234567"}, "FAIL", "Phone Number is Invalid!"),
    (
        {"Priority": "100", "ExpiryDate": "bad"},
        "FAIL",
        "The priority value must be numeric and range from 0 to 99.",
    ),  # 8  # fmt: skip
    ({"Priority": " "}, "FAIL", "The priority value must be numeric and range from 0 to 99."),
    (
        {"ExpiryDate": "31-12-2099"},
        "FAIL",
        "Invalid date format. Please pass date in format yyyy-MM-dd HH:mm:ss or yyyy-MM-dd",
    ),  # 9  # fmt: skip
    (
        {"ExpiryDate": "2001-01-01"},
        "FAIL",
        "The expiry date and time must be in the future",
    ),  # 10  # fmt: skip
    ({"campaign_name": "Agents"}, "FAIL", "Agent Is Empty!"),  # 11
    ({"campaign_name": "Agents", "agentId": "A999"}, "FAIL", "Agent is not correctly mapped!"),
    ({"campaign_name": "Skills"}, "FAIL", "Please provide valid skill"),
    ({"campaign_name": "Skills", "skill": "tamil"}, "FAIL", "Please provide valid skill"),
]


@pytest.mark.parametrize(("fields", "status", "message"), CHECKS)
async def test_checks_in_order_answer_xml_and_change_nothing(
    client, sessionmaker, fields, status, message
):
    assert await get_xml(client, action="start", **fields) == xml(status, message)
    assert await get_json(client, action="start", **fields) == {
        "status": status,
        "message": message,
    }
    assert await all_leads(sessionmaker) == []
    assert await running_campaigns(sessionmaker) == set()


async def test_a_number_on_the_do_not_call_list_is_refused_before_the_later_checks(
    client, sessionmaker
):
    listed = await client.put("/v1/dnc/9876543210", auth=("acme", KEY))
    assert listed.status_code == 201, listed.text
    expected = xml("FAIL", "PhoneNumber Added is a DND Number")
    assert await get_xml(client) == expected  # 7
    assert await get_xml(client, Priority="100") == expected  # before check 8
    assert await all_leads(sessionmaker) == []


async def test_a_stored_lead_answers_successfully_updated_with_its_columns(client, sessionmaker):
    answer = await get_xml(
        client,
        Name="Asha Rao",
        Priority="7",
        ExpiryDate="2099-12-31",
        city="Pune",
        OrderNo="ORD-1",
    )
    assert answer == xml("SUCCESS", "Successfully Updated")
    [lead] = await leads_of(sessionmaker)
    assert (lead.phone_number, lead.name, lead.priority) == ("9876543210", "Asha Rao", 7)
    assert lead.expires_at is not None and lead.expires_at.year == 2099
    assert lead.extra == {"city": "Pune", "OrderNo": "ORD-1"}


async def test_routed_campaigns_store_with_agent_and_skill(client, sessionmaker):
    agents = await get_xml(client, campaign_name="Agents", AgentID="A100")
    skills = await get_json(client, campaign_name="Skills", skill="hindi")
    assert agents == xml("SUCCESS", "Successfully Updated")
    assert skills == {"status": "SUCCESS", "message": "Successfully Updated"}
    [lead] = await leads_of(sessionmaker, "Agents")
    assert lead.agent_id == "A100"


async def test_start_and_stop_actions(client, sessionmaker):
    started = xml("SUCCESS", "Successfully Updated, Progressive was started")
    assert await get_xml(client, action="Start", PhoneNumber="9000000001") == started
    assert await running_campaigns(sessionmaker) == {"Sales"}
    assert await get_xml(client, action="START", PhoneNumber="9000000002") == started  # again
    stopped = {"status": "SUCCESS", "message": "Successfully Updated, Progressive was stopped"}
    assert await get_json(client, action="stop", PhoneNumber="9000000003") == stopped
    assert await running_campaigns(sessionmaker) == set()
    plain = xml("SUCCESS", "Successfully Updated")
    assert await get_xml(client, action="pause", PhoneNumber="9000000004") == plain
    assert len(await all_leads(sessionmaker)) == 4


async def test_check_duplicate_refuses_a_number_the_campaign_holds(client, sessionmaker):
    assert await get_xml(client) == xml("SUCCESS", "Successfully Updated")
    duplicate = xml("SUCCESS", "Number Already Exist")
    assert await get_xml(client, checkDuplicate="true", action="start") == duplicate
    assert await get_xml(client, checkDuplicate="TRUE", campaign_name="Skills", skill="hindi") == (
        xml("SUCCESS", "Successfully Updated")  # another campaign
    )
    assert await get_xml(client, checkduplicate="false") == xml("SUCCESS", "Successfully Updated")
    assert len(await all_leads(sessionmaker)) == 3
    assert await running_campaigns(sessionmaker) == set()


async def test_duplicates_are_exact_under_concurrency(client, sessionmaker):
    request = params(PhoneNumber="+919876543210", checkDuplicate="true", format="json")
    answers = await asyncio.gather(*(client.get(URL, params=request) for _ in range(20)))
    bodies = [response.json()["message"] for response in answers]
    assert sorted(bodies) == ["Number Already Exist"] * 19 + ["Successfully Updated"]
    assert len(await all_leads(sessionmaker)) == 1


# --- how real clients send it ----------------------------------------------------------


async def test_path_segments_style_with_format_json(client, sessionmaker):
    path = f"{URL}/api_key/{KEY}/campaign_name/Sales/PhoneNumber/9876543210/format/json"
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "SUCCESS", "message": "Successfully Updated"}
    assert len(await all_leads(sessionmaker)) == 1


async def test_the_json_method_segment_and_percent_encoded_segments(client, sessionmaker):
    path = (
        f"{URL}.json/api_key/{KEY}/campaign_name/Sales/PhoneNumber/%2B919876543210/Name/A%2FB%20C/"
    )
    response = await client.get(path)
    assert response.json() == {"status": "SUCCESS", "message": "Successfully Updated"}
    [lead] = await leads_of(sessionmaker)
    assert (lead.phone_number, lead.name) == ("+919876543210", "A/B C")


async def test_xml_method_segment_and_format_xml_answer_xml(client):
    response = await client.get(f"{URL}.xml", params=params())
    assert response.text == xml("SUCCESS", "Successfully Updated")
    response = await client.get(f"{URL}.json", params=params(format="xml", PhoneNumber="98765"))
    assert response.text == xml("SUCCESS", "Successfully Updated")  # the parameter wins


async def test_post_form_urlencoded_with_empty_fields_absent(client, sessionmaker):
    form = {**params(), "Name": "", "Priority": "", "ExpiryDate": "", "city": "", "zip": "411001"}
    response = await client.post(URL, data=form)
    assert response.status_code == 200
    assert response.text == xml("SUCCESS", "Successfully Updated")
    [lead] = await leads_of(sessionmaker)
    assert (lead.name, lead.priority, lead.expires_at) == (None, 1, None)
    assert lead.extra == {"zip": "411001"}


async def test_post_multipart_form_data(client, sessionmaker):
    parts = {name: (None, value) for name, value in params(format="json", Name="Ravi").items()}
    response = await client.post(URL, files=parts)
    assert response.json() == {"status": "SUCCESS", "message": "Successfully Updated"}
    [lead] = await leads_of(sessionmaker)
    assert lead.name == "Ravi"


async def test_post_with_the_query_string_only(client, sessionmaker):
    response = await client.post(URL, params=params())
    assert response.text == xml("SUCCESS", "Successfully Updated")
    assert len(await all_leads(sessionmaker)) == 1


async def test_names_match_in_any_case(client, sessionmaker):
    request = {
        "API_KEY": KEY,
        "Campaign_Name": "Agents",
        "phonenumber": "9876543210",
        "NAME": "Lower Case",
        "agentid": "A100",
        "FORMAT": "JSON",
    }
    response = await client.get(URL, params=request)
    assert response.json() == {"status": "SUCCESS", "message": "Successfully Updated"}
    [lead] = await leads_of(sessionmaker, "Agents")
    assert lead.name == "Lower Case"


async def test_the_path_wins_over_the_form_which_wins_over_the_query(client, sessionmaker):
    path = f"{URL}/PhoneNumber/9000000001"
    query = params(PhoneNumber="9000000003", Name="from query", city="query city")
    form = {"PhoneNumber": "9000000002", "name": "from form"}
    response = await client.post(path, params=query, data=form)
    assert response.text == xml("SUCCESS", "Successfully Updated")
    [lead] = await leads_of(sessionmaker)
    assert (lead.phone_number, lead.name) == ("9000000001", "from form")
    assert lead.extra == {"city": "query city"}


async def test_an_empty_path_value_falls_back_to_the_form(client, sessionmaker):
    response = await client.post(f"{URL}/Name//PhoneNumber", data=params(Name="form name"))
    assert response.text == xml("SUCCESS", "Successfully Updated")
    [lead] = await leads_of(sessionmaker)
    assert lead.name == "form name"


# --- our own HTTP answers, in the requested format ----------------------------------------


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405_in_the_requested_format(client, sessionmaker, method):
    response = await client.request(method, URL, params=params())
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.text == (
        f"{DECLARATION}<xml><status>false</status>"
        "<message>Use GET or POST on this endpoint.</message><data/></xml>\n"
    )
    response = await client.request(method, f"{URL}.json")
    assert response.status_code == 405
    assert response.json() == {
        "status": "false",
        "message": "Use GET or POST on this endpoint.",
        "data": None,
    }
    assert await all_leads(sessionmaker) == []


async def test_a_body_that_is_not_a_form_is_400(client, sessionmaker):
    response = await client.post(URL + "?format=json", json=params())
    assert response.status_code == 400
    assert response.json() == {
        "status": "false",
        "message": "The request body must be application/x-www-form-urlencoded or"
        " multipart/form-data.",
        "data": None,
    }
    assert await all_leads(sessionmaker) == []


async def test_a_file_part_is_400(client, sessionmaker):
    files = {"api_key": (None, KEY), "upload": ("leads.csv", b"1,2,3", "text/csv")}
    response = await client.post(URL, files=files, params={"format": "json"})
    assert response.status_code == 400
    assert response.json()["message"] == (
        "File uploads are not accepted: send every parameter as a plain form field."
    )


async def test_parameters_that_are_not_utf8_are_400(client):
    response = await client.get(URL + "?format=json&api_key=%FF%FE")
    assert response.status_code == 400
    assert response.json() == {
        "status": "false",
        "message": "The parameters must be UTF-8 text, percent-encoded.",
        "data": None,
    }


async def test_a_nul_in_a_documented_parameter_is_400(client, sessionmaker):
    response = await client.get(URL, params=params(Name="a\x00b", format="json"))
    assert response.status_code == 400
    assert response.json() == {
        "status": "false",
        "message": "The value of 'Name' contains a NUL character (U+0000).",
        "data": None,
    }
    assert await all_leads(sessionmaker) == []


async def test_extra_column_limits_are_413_with_the_name_escaped_in_xml(client, sessionmaker):
    name = "a<b&c>" + "x" * 70
    response = await client.get(URL, params=params(**{name: "v"}))
    assert response.status_code == 413
    assert response.text == (
        f"{DECLARATION}<xml><status>false</status><message>An extra column name is longer"
        " than 64 characters.</message><data/></xml>\n"
    )
    value = "v" * 1025
    response = await client.get(URL, params=params(**{"a<b&c>": value}))
    assert response.status_code == 413
    assert "<message>The value of extra column 'a&lt;b&amp;c&gt;' is longer than 1024" in (
        response.text
    )
    many = {f"col{i}": "v" for i in range(51)}
    response = await client.post(URL, data={**params(format="json"), **many})
    assert response.status_code == 413
    assert response.json()["message"] == (
        "Too many extra columns: 51 sent, at most 50 are accepted."
    )
    assert await all_leads(sessionmaker) == []


async def test_an_oversized_form_body_is_413(client, sessionmaker):
    form = {**params(), "notes": "n" * 70_000}
    response = await client.post(URL + "?format=json", data=form)
    assert response.status_code == 413
    assert response.json() == {
        "status": "false",
        "message": "The request body is larger than 65536 bytes.",
        "data": None,
    }


async def test_other_methods_of_the_old_api_are_404(client):
    response = await client.get(URL + "X", params=params())
    assert response.status_code == 404


# --- rate limits, shared with AddCampaignData -------------------------------------------


async def test_the_account_budget_is_shared_with_add_campaign_data(client, sessionmaker):
    async with session_scope(sessionmaker) as session:
        await update_account(session, "acme", rate_limit=2)
    body = {"userName": "acme", "apiKey": KEY, "campaignName": "Sales", "phoneNumber": "9000000001"}
    assert (await client.post(ADD_URL, json=body)).status_code == 200
    assert (await client.get(URL, params=params(PhoneNumber="9000000002"))).status_code == 200
    refused = await client.get(URL, params=params(PhoneNumber="9000000003"))
    assert refused.status_code == 429
    retry_after = int(refused.headers["Retry-After"])
    assert refused.text == (
        f"{DECLARATION}<xml><status>false</status><message>Too many requests for this account"
        f" or address; retry after {retry_after} seconds.</message><data/></xml>\n"
    )
    refused = await client.get(URL, params=params(PhoneNumber="9000000003", format="json"))
    assert refused.status_code == 429 and refused.json()["data"] is None
    assert len(await all_leads(sessionmaker)) == 2


async def test_unknown_keys_count_against_the_address(backend: Backend):
    async with running_app(backend.settings(ip_rate_limit=2)) as app, client_for(app) as client:
        answers = [await client.get(URL, params=params(api_key="guess")) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert answers[0].text == xml("FAIL", "No User Found")
    assert answers[2].headers["content-type"] == "application/xml"


async def test_a_hung_redis_does_not_break_the_endpoint(backend: Backend, redis_peer, sessionmaker):
    settings = backend.settings(redis_url=redis_peer.url, redis_timeout_ms=200)
    async with running_app(settings) as app, client_for(app) as client:
        response = await client.get(URL, params=params())
    assert response.status_code == 200
    assert response.text == xml("SUCCESS", "Successfully Updated")
    assert len(await all_leads(sessionmaker)) == 1


# --- settings that change, a database that is lost ---------------------------------------


async def test_a_key_rotated_elsewhere_is_refused_at_once(client, sessionmaker):
    assert await get_xml(client) == xml("SUCCESS", "Successfully Updated")  # cached now
    async with session_scope(sessionmaker) as session:
        await rotate_api_key(session, "acme", api_key="acme-new-secret-key")
    assert await get_xml(client, PhoneNumber="9000000001") == xml("FAIL", "No User Found")
    new = await get_xml(client, api_key="acme-new-secret-key", PhoneNumber="9000000002")
    assert new == xml("SUCCESS", "Successfully Updated")
    assert len(await all_leads(sessionmaker)) == 2


async def test_a_database_lost_while_writing_answers_503_and_stores_nothing(
    app, client, sessionmaker, monkeypatch
):
    store = app.services.writer._store

    async def lost(batch):  # type: ignore[no-untyped-def]
        raise DatabaseUnavailable()

    monkeypatch.setattr(store, "write", lost)
    response = await client.get(URL, params=params(action="start"))
    assert response.status_code == 503
    assert response.text == (
        f"{DECLARATION}<xml><status>false</status><message>The database is unavailable;"
        " nothing was stored. Try again shortly.</message><data/></xml>\n"
    )
    monkeypatch.undo()
    assert await all_leads(sessionmaker) == []
    assert await running_campaigns(sessionmaker) == set()
    assert await get_xml(client) == xml("SUCCESS", "Successfully Updated")  # recovers


async def test_the_openapi_document_describes_get_and_post_in_xml_and_json(client):
    document = (await client.get("/openapi.json")).json()
    operations = document["paths"][URL]
    assert set(operations) == {"get", "post"}
    for operation in operations.values():
        names = [p["name"] for p in operation["parameters"]]
        assert names[:3] == ["api_key", "campaign_name", "PhoneNumber"]
        content = operation["responses"]["200"]["content"]
        assert content["application/xml"]["examples"]["stored"]["value"] == xml(
            "SUCCESS", "Successfully Updated"
        )
        assert content["application/json"]["examples"]["no_user"]["value"] == {
            "status": "FAIL",
            "message": "No User Found",
        }
        assert {"405", "413", "429", "503"} <= set(operation["responses"])
    forms = operations["post"]["requestBody"]["content"]
    assert set(forms) == {"application/x-www-form-urlencoded", "multipart/form-data"}
