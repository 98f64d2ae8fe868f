"""Every event type reaches a real HTTP receiver, signed as Standard Webhooks says and
verifiable with its library; written in the transaction of its change (both backends)."""

from __future__ import annotations

from typing import Any

import pytest
from standardwebhooks.webhooks import WebhookVerificationError

from dialbase.config import Settings
from tests.dialer.helpers import lease, report
from tests.factories import body, make_account, make_campaign
from tests.webhooks.support import (
    AUTH,
    Receiver,
    client_of,
    drain,
    hook_settings,
    outbox,
    receiver,
    running,
    set_webhook,
)

ADD = "/ca_apis/AddCampaignData"


@pytest.fixture
def hooks() -> Any:
    with receiver() as server:
        yield server


async def _setup(app: Any) -> None:
    sessions = app.services.sessionmaker
    await make_account(sessions)
    await make_campaign(sessions)
    await make_campaign(sessions, "Quiet")


def _types(received: Receiver, secret: str) -> list[tuple[str, dict[str, Any]]]:
    return [(p["type"], p["data"]) for p in (r.verified(secret) for r in received.delivered())]


async def test_each_event_arrives_signed_and_verifiable(settings: Settings, hooks: Receiver):
    async with running(hook_settings(settings)) as app, client_of(app) as client:
        await _setup(app)
        secret = await set_webhook(client, hooks.url)
        assert secret.startswith("whsec_")
        added = await client.post(ADD, json=body(phoneNumber="9876543210", name="Asha"))
        assert added.json()["status"] == "Success", added.text
        assert (await client.post("/v1/campaigns/Sales/start", auth=AUTH)).status_code == 200
        leased = await lease(client)
        lease_id = leased.json()["leases"][0]["leaseId"]
        assert (await report(client, lease_id, "no_answer")).status_code == 200
        deleted = await client.delete(
            "/v1/campaigns/Sales/leads", params={"phoneNumber": "9876543210"}, auth=AUTH
        )
        assert deleted.status_code == 200, deleted.text
        stopped = await client.put(
            "/ca_apis/setCampaignStatus",
            json={
                "userName": "acme",
                "apiKey": "acme-secret-key",
                "campaignName": "Sales",
                "action": "stop",
                "process": True,
            },
        )
        assert "was stopped" in stopped.json()["message"], stopped.text
        await drain(app, lambda: len(hooks.delivered()) >= 5)
        events = _types(hooks, secret)
    # In order per lead; the campaign events may come between them in any order.
    assert [kind for kind, _ in events if kind.startswith("lead.")] == [
        "lead.added",
        "lead.outcome",
        "lead.deleted",
    ], events
    assert sorted(kind for kind, _ in events if kind.startswith("campaign.")) == [
        "campaign.started",
        "campaign.stopped",
    ]
    lead_ids = {data["leadId"] for kind, data in events if kind.startswith("lead.")}
    assert len(lead_ids) == 1
    by_kind = dict(events)
    added_data, outcome_data = by_kind["lead.added"], by_kind["lead.outcome"]
    assert (added_data["phoneNumber"], added_data["name"], added_data["campaign"]) == (
        "9876543210",
        "Asha",
        "Sales",
    )
    assert (outcome_data["outcome"], outcome_data["leaseId"], outcome_data["attempt"]) == (
        "no_answer",
        lease_id,
        1,
    )
    assert outcome_data["leadStatus"] == "retry" and outcome_data["nextAttemptAt"]
    ids = [item.headers["webhook-id"] for item in hooks.delivered()]
    assert len(set(ids)) == 5 and all(i.startswith("evt_") for i in ids)


async def test_a_wrong_secret_or_a_changed_body_fails_verification(
    settings: Settings, hooks: Receiver
):
    async with running(hook_settings(settings)) as app, client_of(app) as client:
        await _setup(app)
        secret = await set_webhook(client, hooks.url)
        await client.post(ADD, json=body())
        await drain(app, lambda: len(hooks.delivered()) >= 1)
    item = hooks.delivered()[0]
    assert item.verified(secret)["type"] == "lead.added"
    other = await_other_secret(secret)
    with pytest.raises(WebhookVerificationError):
        item.verified(other)
    item.body = item.body.replace(b"9876543210", b"9876543211")
    with pytest.raises(WebhookVerificationError):
        item.verified(secret)


def await_other_secret(secret: str) -> str:
    from dialbase.webhooks.service import generate_secret

    other = generate_secret()
    assert other != secret
    return other


async def test_a_campaign_webhook_overrides_the_account_and_events_can_be_chosen(
    settings: Settings, hooks: Receiver
):
    with receiver() as campaign_hooks:
        async with running(hook_settings(settings)) as app, client_of(app) as client:
            await _setup(app)
            account_secret = await set_webhook(client, hooks.url)
            campaign_secret = await set_webhook(
                client, campaign_hooks.url, "Quiet", events=["campaign.started"]
            )
            await client.post(ADD, json=body(campaignName="Quiet"))  # not enabled: nothing
            await client.post(ADD, json=body(campaignName="Sales", phoneNumber="9876500001"))
            await client.post("/v1/campaigns/Quiet/start", auth=AUTH)
            await drain(
                app, lambda: len(hooks.delivered()) >= 1 and len(campaign_hooks.delivered()) >= 1
            )
            await drain(app, lambda: True)
            rows = await outbox(app.services.sessionmaker)
        assert [(r.type, r.status) for r in rows] == [
            ("lead.added", "delivered"),
            ("campaign.started", "delivered"),
        ]
        assert [k for k, _ in _types(hooks, account_secret)] == ["lead.added"]
        assert [(k, d["campaign"]) for k, d in _types(campaign_hooks, campaign_secret)] == [
            ("campaign.started", "Quiet")
        ]


async def test_without_a_webhook_nothing_is_written(settings: Settings):
    async with running(hook_settings(settings)) as app, client_of(app) as client:
        await _setup(app)
        await client.post(ADD, json=body(action="start"))
        await client.post("/v1/campaigns/Sales/stop", auth=AUTH)
        assert await outbox(app.services.sessionmaker) == []


async def test_the_action_of_an_added_lead_reports_the_campaign_start(
    settings: Settings, hooks: Receiver
):
    async with running(hook_settings(settings)) as app, client_of(app) as client:
        await _setup(app)
        secret = await set_webhook(client, hooks.url)
        answer = await client.post(ADD, json=body(action="start"))
        assert "was started" in answer.json()["message"], answer.text
        again = await client.post(ADD, json=body(action="start", phoneNumber="9876500002"))
        assert "Already Started" in again.json()["message"], again.text
        await drain(app, lambda: len(hooks.delivered()) >= 3)
        rows = await outbox(app.services.sessionmaker)
    # Written in the order of the changes (the second lead's start changed nothing).
    assert [row.type for row in rows] == ["lead.added", "campaign.started", "lead.added"]
    assert sorted(kind for kind, _ in _types(hooks, secret)) == [
        "campaign.started",
        "lead.added",
        "lead.added",
    ]


async def test_a_bulk_delete_reports_each_deleted_lead(settings: Settings, hooks: Receiver):
    async with running(hook_settings(settings)) as app, client_of(app) as client:
        await _setup(app)
        for number in ("9876500001", "9876500002", "9876500003"):
            await client.post(ADD, json=body(phoneNumber=number))
        secret = await set_webhook(client, hooks.url, events=["lead.deleted"])
        deleted = await client.request(
            "DELETE",
            "/ca_apis/DeleteBulkData",
            json={
                "userName": "acme",
                "apiKey": "acme-secret-key",
                "campaignName": ["Sales"],
                "phoneNumber": ["9876500001", "9876500003"],
            },
        )
        assert deleted.json()["deleted"] == 2, deleted.text
        await drain(app, lambda: len(hooks.delivered()) >= 2)
    assert sorted(d["phoneNumber"] for _, d in _types(hooks, secret)) == [
        "9876500001",
        "9876500003",
    ]


async def test_the_older_add_endpoint_reports_lead_added(settings: Settings, hooks: Receiver):
    legacy = "/cloudAgentRestAPI/index.php/CloudAgent/CloudAgentAPI/addCamapaignData"
    async with running(hook_settings(settings)) as app, client_of(app) as client:
        await _setup(app)
        secret = await set_webhook(client, hooks.url)
        params = {"api_key": "acme-secret-key", "campaign_name": "Sales", "PhoneNumber": "98765"}
        added = await client.get(legacy, params={**params, "format": "json"})
        assert added.json() == {"status": "SUCCESS", "message": "Successfully Updated"}
        await drain(app, lambda: len(hooks.delivered()) >= 1)
    [(kind, data)] = _types(hooks, secret)
    assert (kind, data["phoneNumber"], data["campaign"]) == ("lead.added", "98765", "Sales")


async def test_events_of_a_batch_name_their_own_leads(settings: Settings):
    """Concurrent adds of two accounts (one with a webhook) share write batches: each
    lead.added names the id of the lead it reports."""
    import asyncio

    from sqlalchemy import select

    from dialbase.db import session_scope
    from dialbase.leads.models import Lead

    async with running(hook_settings(settings)) as app, client_of(app) as client:
        sessions = app.services.sessionmaker
        await _setup(app)
        await make_account(sessions, "other", "other-secret-key")
        await make_campaign(sessions, username="other")
        await set_webhook(client, "http://127.0.0.1:9/never-called")
        requests = [
            body(
                phoneNumber=f"98765{i:05d}",
                **({} if i % 3 else {"userName": "other", "apiKey": "other-secret-key"}),
            )
            for i in range(60)
        ]
        answers = await asyncio.gather(*(client.post(ADD, json=r) for r in requests))
        assert all(a.json()["status"] == "Success" for a in answers)
        rows = await outbox(sessions)
        async with session_scope(sessions, read_only=True) as session:
            numbers = dict((await session.execute(select(Lead.id, Lead.phone_number))).all())
    import orjson

    reported = {row.lead_id: orjson.loads(row.data)["phoneNumber"] for row in rows}
    assert len(rows) == 40 and all(row.type == "lead.added" for row in rows)
    assert reported == {lead_id: numbers[lead_id] for lead_id in reported}
    assert set(reported.values()) == {f"98765{i:05d}" for i in range(60) if i % 3}
