"""Delivery: retries, failure kept and visible, order per lead, addresses checked again
at send time (both backends, a real HTTP receiver)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dialbase.config import Settings
from dialbase.webhooks.delivery import WebhookDispatcher, retry_delay
from tests.dialer.helpers import lease, report
from tests.factories import body, make_account, make_campaign
from tests.webhooks.support import (
    AUTH,
    Received,
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
FIRST, SECOND = "9876500001", "9876500002"


@pytest.fixture
def hooks() -> Any:
    with receiver() as server:
        yield server


def _is(item: Received, kind: str, number: str | None = None) -> bool:
    payload = item.json
    if payload["type"] != kind:
        return False
    return number is None or payload["data"].get("phoneNumber") == number


async def _two_leads_with_outcomes(app: Any, client: Any) -> dict[str, str]:
    """Leads FIRST and SECOND added, leased and reported: their lead ids by number."""
    sessions = app.services.sessionmaker
    await make_account(sessions)
    await make_campaign(sessions)
    await set_webhook(client, _url(app))
    for number in (FIRST, SECOND):
        assert (await client.post(ADD, json=body(phoneNumber=number))).status_code == 200
    await client.post("/v1/campaigns/Sales/start", auth=AUTH)
    leases = (await lease(client, count=2)).json()["leases"]
    for item in leases:
        assert (await report(client, item["leaseId"], "busy")).status_code == 200
    rows = await outbox(sessions)
    added = [row for row in rows if row.type == "lead.added"]
    return {FIRST: str(added[0].lead_id), SECOND: str(added[1].lead_id)}


def _url(app: Any) -> str:
    return app.state.hook_url  # type: ignore[no-any-return]


async def test_a_leads_later_event_waits_until_its_failing_first_one_is_delivered(
    settings: Settings, hooks: Receiver
):
    failing = {"on": True}

    def answer(item: Received) -> int:
        return 500 if failing["on"] and _is(item, "lead.added", FIRST) else 200

    hooks.answer = answer
    async with running(hook_settings(settings)) as app, client_of(app) as client:
        app.state.hook_url = hooks.url
        ids = await _two_leads_with_outcomes(app, client)
        # The other lead's events and the campaign's go on; the first lead's outcome waits.
        await drain(app, lambda: len(hooks.delivered()) >= 3)
        for _ in range(5):  # more attempts of the failing event, all refused
            await drain(app, lambda: True)
            await app.services.webhooks.step()
        first_attempts = [item for item in hooks.received if _is(item, "lead.added", FIRST)]
        assert len(first_attempts) >= 2 and all(i.status == 500 for i in first_attempts)
        outcomes = [
            item.json["data"]["leadId"] for item in hooks.received if _is(item, "lead.outcome")
        ]
        assert outcomes == [ids[SECOND]]  # the first lead's outcome was never sent
        pending = [
            row for row in await outbox(app.services.sessionmaker) if row.status == "pending"
        ]
        assert sorted((row.type, str(row.lead_id)) for row in pending) == [
            ("lead.added", ids[FIRST]),
            ("lead.outcome", ids[FIRST]),
        ]
        failing["on"] = False  # the receiver takes it now: then, and only then, the outcome
        await drain(app, lambda: len(hooks.delivered()) >= 5)
        rows = await outbox(app.services.sessionmaker)
    assert {row.status for row in rows} == {"delivered"}
    first_lead = [
        (item.json["type"], item.status)
        for item in hooks.received
        if item.json["data"].get("leadId") == ids[FIRST]
    ]
    assert first_lead[-2:] == [("lead.added", 200), ("lead.outcome", 200)]
    assert all(kind == "lead.added" for kind, _ in first_lead[:-1])


async def test_an_event_failing_past_the_retry_window_is_kept_failed_and_listed(
    settings: Settings, hooks: Receiver
):
    hooks.answer = lambda item: 500 if _is(item, "lead.added", FIRST) else 200
    quick = hook_settings(settings, webhook_retry_window_seconds=0.5)
    async with running(quick) as app, client_of(app) as client:
        app.state.hook_url = hooks.url
        ids = await _two_leads_with_outcomes(app, client)

        def first_outcome_delivered() -> bool:
            return any(
                _is(i, "lead.outcome") and i.json["data"]["leadId"] == ids[FIRST]
                for i in hooks.delivered()
            )

        # The failed event stops blocking its lead once it failed for good.
        await drain(app, first_outcome_delivered)
        failed = await client.get("/v1/webhooks/deliveries", params={"status": "failed"}, auth=AUTH)
        everything = await client.get("/v1/webhooks/deliveries", params={"limit": 2}, auth=AUTH)
        rest = await client.get(
            "/v1/webhooks/deliveries",
            params={"limit": 10, "after": everything.json()["nextAfter"]},
            auth=AUTH,
        )
        bad = await client.get("/v1/webhooks/deliveries", params={"status": "lost"}, auth=AUTH)
        rows = await outbox(app.services.sessionmaker)
    assert failed.status_code == 200, failed.text
    [item] = failed.json()["deliveries"]
    assert (item["type"], item["leadId"], item["status"]) == ("lead.added", ids[FIRST], "failed")
    assert item["attempts"] >= 1 and item["lastStatus"] == 500 and item["lastError"] == "HTTP 500"
    assert item["nextAttemptAt"] is None
    page = everything.json()["deliveries"] + rest.json()["deliveries"]
    assert len(page) == 5 and rest.json()["nextAfter"] is None
    assert [p["eventId"] for p in page] == [row.event_id for row in reversed(rows)]  # newest first
    assert bad.status_code == 422 and "pending, delivered, failed" in bad.json()["detail"]


async def test_a_receiver_that_refuses_connections_is_tried_again_until_it_is_back(
    settings: Settings, hooks: Receiver
):
    async with running(hook_settings(settings)) as app, client_of(app) as client:
        sessions = app.services.sessionmaker
        await make_account(sessions)
        await make_campaign(sessions)
        secret = await set_webhook(client, hooks.url)
        hooks.stop()  # connection refused from now on
        await client.post(ADD, json=body())
        for _ in range(3):
            await app.services.webhooks.step()
            await drain(app, lambda: True)
        [row] = await outbox(sessions)
        assert row.status == "pending" and row.attempts >= 1
        assert row.last_error and row.last_error.startswith("no answer")
        hooks.start()
        await drain(app, lambda: len(hooks.delivered()) == 1)
        [row] = await outbox(sessions)
    assert row.status == "delivered"
    assert hooks.delivered()[0].verified(secret)["type"] == "lead.added"


async def test_an_internal_address_is_refused_again_at_send_time(
    settings: Settings, hooks: Receiver
):
    async with running(hook_settings(settings)) as app, client_of(app) as client:
        sessions = app.services.sessionmaker
        await make_account(sessions)
        await make_campaign(sessions)
        await set_webhook(client, hooks.url)  # allowed then (DIALBASE_ALLOW_PRIVATE_CALLBACKS)
        await client.post(ADD, json=body())
        strict = WebhookDispatcher(sessions, hook_settings(settings, allow_private_callbacks=False))
        try:
            assert await strict.step() == 1
        finally:
            await strict.close()
        [row] = await outbox(sessions)
    assert hooks.received == []
    assert row.status == "failed"
    assert (
        row.last_error == "refused: the host is, or resolves to, a non-public address (127.0.0.1)"
    )


async def test_a_removed_webhook_fails_its_pending_events(settings: Settings, hooks: Receiver):
    async with running(hook_settings(settings)) as app, client_of(app) as client:
        sessions = app.services.sessionmaker
        await make_account(sessions)
        await make_campaign(sessions)
        await set_webhook(client, hooks.url)
        await client.post(ADD, json=body())
        assert (await client.delete("/v1/webhooks", auth=AUTH)).status_code == 204
        await client.post(ADD, json=body(phoneNumber=SECOND))  # no webhook: no event
        await app.services.webhooks.step()
        rows = await outbox(sessions)
    assert [(row.status, row.last_error) for row in rows] == [("failed", "the webhook was removed")]
    assert hooks.received == []


def test_retry_delays_grow_exponentially_with_jitter_up_to_the_maximum(settings: Settings):
    tuned = settings.model_copy(
        update={"webhook_retry_base_seconds": 10.0, "webhook_retry_max_seconds": 3600.0}
    )
    for failures, full in ((1, 10.0), (2, 20.0), (3, 40.0), (10, 3600.0), (500, 3600.0)):
        delays = {retry_delay(tuned, failures) for _ in range(50)}
        assert all(full / 2 <= delay <= full for delay in delays), (failures, delays)
        assert len(delays) > 1  # jittered


async def test_old_delivered_and_failed_events_are_pruned_pending_ones_kept(
    settings: Settings, hooks: Receiver
):
    hooks.answer = lambda item: 500 if _is(item, "lead.added", FIRST) else 200
    quick = hook_settings(settings, webhook_retry_window_seconds=0.3)
    async with running(quick) as app, client_of(app) as client:
        sessions = app.services.sessionmaker
        await make_account(sessions)
        await make_campaign(sessions)
        await set_webhook(client, hooks.url)
        await client.post(ADD, json=body(phoneNumber=FIRST))  # fails for good
        await client.post(ADD, json=body(phoneNumber=SECOND))  # delivered
        await drain(app, lambda: {r.status for r in hooks.received} == {200, 500})
        while {row.status for row in await outbox(sessions)} != {"failed", "delivered"}:
            await drain(app, lambda: True)
            await app.services.webhooks.step()
        hooks.stop()
        await client.post(ADD, json=body(phoneNumber="9876500003"))  # stays pending
        dispatcher = app.services.webhooks
        assert await dispatcher.prune() == 0  # nothing is old enough yet
        later = datetime.now(UTC) + timedelta(days=8)
        assert await dispatcher.prune(later) == 2
        rows = await outbox(sessions)
    assert [(row.status, row.type) for row in rows] == [("pending", "lead.added")]
