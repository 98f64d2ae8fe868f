"""The group-commit writer: a success only after its commit; one bad lead fails alone."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3

from sqlalchemy import select

from dialbase.accounts.models import ConfigRevision
from dialbase.app import create_app
from dialbase.campaigns.models import Campaign
from dialbase.db import session_scope, sqlite_path
from dialbase.errors import ServiceUnavailable
from dialbase.leads.batch import NewLead, Outcome
from dialbase.leads.writer import GroupCommitWriter, make_store
from dialbase.sqlite_writer import SQLiteWriter
from tests.conftest import Backend, client_for_app
from tests.factories import body, leads_of, make_account, make_campaign


def _lead(campaign_id: int, phone: str, revision: int, check_duplicate: bool = False) -> NewLead:
    return NewLead(
        campaign_id=campaign_id,
        revision=revision,
        phone_number=phone,
        name=None,
        priority=1,
        expires_at=None,
        agent_id=None,
        skill=None,
        extra={},
        check_duplicate=check_duplicate,
        action=None,
        phone_e164=phone,
        time_zones="UTC",
    )


async def test_a_lead_the_database_refuses_fails_alone(backend, sessionmaker):
    await make_account(sessionmaker)
    await make_campaign(sessionmaker)
    campaign_id, revision = await _campaign_id(sessionmaker)
    settings = backend.settings()
    sqlite = SQLiteWriter(settings) if backend.name == "sqlite" else None
    writer = GroupCommitWriter(make_store(settings, sqlite), 64)
    try:
        good = [_lead(campaign_id, f"90000000{i:02d}", revision) for i in range(5)]
        orphan = _lead(campaign_id + 999, "9111111111", revision)  # no such campaign
        results = await asyncio.gather(
            *(writer.submit(lead) for lead in [*good[:2], orphan, *good[2:]]),
            return_exceptions=True,
        )
    finally:
        await writer.close()
        if sqlite is not None:
            await sqlite.close()
    assert isinstance(results[2], ServiceUnavailable)
    assert [r.outcome for i, r in enumerate(results) if i != 2] == [Outcome.STORED] * 5
    stored = {lead.phone_number for lead in await leads_of(sessionmaker)}
    assert stored == {lead.phone_number for lead in good}


async def test_a_commit_that_cannot_happen_never_answers_success(tmp_path, sqlite_template):
    """SQLite held by another writer past the busy timeout: 503, and nothing stored."""
    path = tmp_path / "locked.db"
    shutil.copyfile(sqlite_template, path)
    backend = Backend("sqlite", f"sqlite:///{path}", None, "unused")
    app = create_app(backend.settings(sqlite_busy_timeout_ms=200))
    async with app.lifespan(), client_for_app(app) as client:
        sessions = app.services.sessionmaker
        await make_account(sessions)
        await make_campaign(sessions)
        blocker = sqlite3.connect(
            sqlite_path(backend.database_url), isolation_level=None, check_same_thread=False
        )
        # Off the event loop: the app's background transactions can commit meanwhile.
        await asyncio.to_thread(blocker.execute, "BEGIN EXCLUSIVE")
        try:
            response = await client.post("/ca_apis/AddCampaignData", json=body())
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert response.status_code == 503
        assert response.json()["status"] == "false"
        assert await leads_of(sessions) == []
        retried = await client.post("/ca_apis/AddCampaignData", json=body())
        assert retried.json()["message"] == "SuccessFully Updated Progressive Campaign"
        assert len(await leads_of(sessions)) == 1


async def _campaign_id(sessions) -> tuple[int, int]:
    """The id of campaign "Sales" and the configuration revision."""
    async with session_scope(sessions) as session:
        value = await session.scalar(select(Campaign.id).where(Campaign.name == "Sales"))
        revision = await session.scalar(select(ConfigRevision.value))
    assert value is not None and revision is not None
    return value, revision
