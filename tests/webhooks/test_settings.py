"""Webhook settings through /v1 and the CLI: checks, the secret shown once, rotation,
internal addresses refused at configuration; import.done (both backends)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dialbase.campaigns.models import Campaign
from dialbase.config import Settings
from dialbase.db import session_scope
from dialbase.webhooks.models import Webhook
from tests.cli.conftest import cli, one_line_error
from tests.conftest import Backend
from tests.factories import body, make_account, make_campaign
from tests.imports.support import Acme, queue
from tests.webhooks.support import (
    AUTH,
    Receiver,
    client_of,
    drain,
    hook_settings,
    put_webhook,
    receiver,
    running,
    set_webhook,
)

PUBLIC = "https://93.184.215.14/hook"  # a public address, never called by these tests


@pytest.fixture
def hooks() -> Any:
    with receiver() as server:
        yield server


async def _acme(app: Any) -> None:
    await make_account(app.services.sessionmaker)
    await make_campaign(app.services.sessionmaker)


async def _stored(app: Any) -> list[tuple[int | None, str, str, str]]:
    async with session_scope(app.services.sessionmaker, read_only=True) as session:
        rows = await session.scalars(select(Webhook).order_by(Webhook.id))
        return [(row.campaign_id, row.url, row.secret, row.events) for row in rows]


async def test_set_show_rotate_and_remove(settings: Settings):
    async with running(hook_settings(settings, allow_private_callbacks=False)) as app:
        await _acme(app)
        async with client_of(app) as client:
            created = await put_webhook(client, PUBLIC, events=["lead.outcome", "lead.added"])
            assert created.status_code == 201, created.text
            secret = created.json()["secret"]
            assert created.json()["events"] == ["lead.added", "lead.outcome"]
            shown = await client.get("/v1/webhooks", auth=AUTH)
            assert shown.status_code == 200 and shown.json()["secret"] is None
            assert shown.json()["url"] == PUBLIC and shown.json()["campaign"] is None
            replaced = await put_webhook(client, PUBLIC + "2")
            assert replaced.status_code == 200 and replaced.json()["secret"] is None
            assert (
                replaced.json()["events"][0] == "lead.added" and len(replaced.json()["events"]) == 6
            )
            assert (await _stored(app))[0][2] == secret  # kept
            rotated = await put_webhook(client, PUBLIC, rotateSecret=True)
            new_secret = rotated.json()["secret"]
            assert new_secret.startswith("whsec_") and new_secret != secret
            assert (await _stored(app))[0][2] == new_secret
            own = await put_webhook(client, PUBLIC, "Sales", secret="whsec_" + "A" * 32)
            assert own.status_code == 201 and own.json()["secret"] is None  # not echoed
            assert own.json()["campaign"] == "Sales"
            assert (await client.delete("/v1/webhooks", auth=AUTH)).status_code == 204
            assert (await client.get("/v1/webhooks", auth=AUTH)).status_code == 404
            assert (await client.get("/v1/campaigns/Sales/webhooks", auth=AUTH)).status_code == 200
            assert (await client.delete("/v1/webhooks", auth=AUTH)).status_code == 404
        campaign_id = await _campaign_id(app)
        assert await _stored(app) == [
            (campaign_id, PUBLIC, "whsec_" + "A" * 32, "," + ",".join(_all()) + ",")
        ]


def _all() -> list[str]:
    from dialbase.webhooks.models import EVENT_TYPES

    return list(EVENT_TYPES)


async def _campaign_id(app: Any) -> int:
    async with session_scope(app.services.sessionmaker, read_only=True) as session:
        found = await session.scalar(select(Campaign.id).where(Campaign.name == "Sales"))
        assert found is not None
        return found


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("http://127.0.0.1:8000/hook", "non-public address (127.0.0.1)"),
        ("http://10.1.2.3/hook", "non-public address (10.1.2.3)"),
        ("http://[::1]/hook", "non-public address (::1)"),
        ("http://169.254.169.254/latest", "non-public address (169.254.169.254)"),
        ("ftp://example.com/hook", "not an absolute http or https URL"),
        ("https://user:pw@example.com/hook", "user name or password"),
    ],
)
async def test_internal_or_bad_addresses_are_refused_at_configuration(
    settings: Settings, url: str, detail: str
):
    async with running(hook_settings(settings, allow_private_callbacks=False)) as app:
        await _acme(app)
        async with client_of(app) as client:
            refused = await put_webhook(client, url)
            again = await put_webhook(client, url, "Sales")
    assert refused.status_code == 422 and again.status_code == 422, refused.text
    assert refused.json()["detail"].startswith("url: ") and detail in refused.json()["detail"]
    assert await _stored(app) == []


@pytest.mark.parametrize(
    ("extra", "detail"),
    [
        ({"secret": "plain-text"}, "secret: use whsec_"),
        ({"secret": "whsec_c2hvcnQ="}, "secret: use whsec_"),
        ({"events": ["lead.added", "lead.lost"]}, "unknown event type 'lead.lost'"),
        ({"events": []}, "name at least one of"),
        ({"secret": "whsec_" + "A" * 32, "rotateSecret": True}, "not both"),
    ],
)
async def test_bad_settings_are_refused_and_change_nothing(
    settings: Settings, extra: dict[str, Any], detail: str
):
    async with running(hook_settings(settings, allow_private_callbacks=False)) as app:
        await _acme(app)
        async with client_of(app) as client:
            refused = await put_webhook(client, PUBLIC, **extra)
            unknown = await put_webhook(client, PUBLIC, "Nope")
            anonymous = await client.put("/v1/webhooks", json={"url": PUBLIC})
    assert refused.status_code == 422 and detail in refused.json()["detail"], refused.text
    assert unknown.status_code == 404 and anonymous.status_code == 401
    assert await _stored(app) == []


async def test_an_import_reports_import_done_once_and_no_lead_added_per_row(
    settings: Settings, hooks: Receiver
):
    async with running(hook_settings(settings)) as app, client_of(app) as client:
        sessions = app.services.sessionmaker
        await _acme(app)
        secret = await set_webhook(client, hooks.url)
        account_id = await _account_id(app)
        acme = Acme(account_id, {"Sales": await _campaign_id(app)})
        rows = [["9876500001"], ["9876500002"], ["9876500001"], ["12"]]
        import_id = await queue(sessions, acme, ["PhoneNumber"], rows)
        await drain(app, lambda: len(hooks.delivered()) >= 1)
        await client.post("/ca_apis/AddCampaignData", json=body(phoneNumber="9876500009"))
        await drain(app, lambda: len(hooks.delivered()) >= 2)
    payloads = [item.verified(secret) for item in hooks.delivered()]
    assert [p["type"] for p in payloads] == ["import.done", "lead.added"]
    assert payloads[0]["data"] == {
        "campaign": "Sales",
        "campaignId": acme.campaigns["Sales"],
        "importId": str(import_id),
        "source": "bulk",
        "total": 4,
        "added": 2,
        "duplicates": 1,
        "rejected": 1,
    }


async def test_an_import_that_starts_its_campaign_reports_campaign_started_then_import_done(
    settings: Settings, hooks: Receiver
):
    async with running(hook_settings(settings)) as app, client_of(app) as client:
        sessions = app.services.sessionmaker
        await _acme(app)
        secret = await set_webhook(client, hooks.url)
        acme = Acme(await _account_id(app), {"Sales": await _campaign_id(app)})
        await queue(sessions, acme, ["PhoneNumber"], [["9876500011"]], start=True)
        await drain(app, lambda: len(hooks.delivered()) >= 2)
    payloads = [item.verified(secret) for item in hooks.delivered()]
    assert [p["type"] for p in payloads] == ["campaign.started", "import.done"]
    assert payloads[1]["data"]["added"] == 1


async def _account_id(app: Any) -> int:
    async with session_scope(app.services.sessionmaker, read_only=True) as session:
        found = await session.scalar(select(Campaign.account_id).where(Campaign.name == "Sales"))
        assert found is not None
        return found


def test_the_cli_sets_shows_lists_and_removes(backend: Backend, tmp_path: Path):
    url = backend.database_url
    assert cli("account", "create", "--username", "acme", "--database-url", url).exit_code == 0
    created = cli(
        "webhooks",
        "set",
        "--username",
        "acme",
        "--url",
        PUBLIC,
        "--events",
        "lead.added,import.done",
        "--database-url",
        url,
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and "shown once" in created.stderr
    shown = cli("webhooks", "show", "--username", "acme", "--json", "--database-url", url)
    assert shown.exit_code == 0 and secret not in shown.stdout
    assert '"lead.added"' in shown.stdout and '"import.done"' in shown.stdout
    internal = cli(
        "webhooks",
        "set",
        "--username",
        "acme",
        "--url",
        "http://127.0.0.1/x",
        "--database-url",
        url,
    )
    assert internal.exit_code == 1
    assert one_line_error(internal) == (
        "error: url: the host is, or resolves to, a non-public address (127.0.0.1)"
    )
    listed = cli("webhooks", "deliveries", "--username", "acme", "--database-url", url)
    assert listed.exit_code == 0 and listed.stdout.strip() == "no events"
    bad = cli(
        "webhooks", "deliveries", "--username", "acme", "--status", "x", "--database-url", url
    )
    assert bad.exit_code == 1 and "status: use one of" in one_line_error(bad)
    removed = cli("webhooks", "remove", "--username", "acme", "--database-url", url)
    assert removed.exit_code == 0
    gone = cli("webhooks", "show", "--username", "acme", "--database-url", url)
    assert gone.exit_code == 1 and one_line_error(gone) == "error: account 'acme' has no webhook"


async def test_a_webhook_put_is_not_kept_for_replay_so_its_secret_is_never_stored_twice(
    settings: Settings,
):
    from dialbase.idempotency_models import IdempotencyKey

    async with running(hook_settings(settings, allow_private_callbacks=False)) as app:
        await _acme(app)
        headers = {"Idempotency-Key": "same-key-1"}
        async with client_of(app) as client:
            first = await client.put(
                "/v1/webhooks", json={"url": PUBLIC}, headers=headers, auth=AUTH
            )
            second = await client.put(
                "/v1/webhooks", json={"url": PUBLIC}, headers=headers, auth=AUTH
            )
        async with session_scope(app.services.sessionmaker, read_only=True) as session:
            kept = list(await session.scalars(select(IdempotencyKey)))
    assert first.status_code == 201 and first.json()["secret"].startswith("whsec_")
    assert second.status_code == 200 and second.json()["secret"] is None
    assert kept == []
