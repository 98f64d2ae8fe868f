"""The import engine: each row rule with its exact message, the duplicate rule, order,
``start``, and resuming after a crash (nothing added twice), on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from dialbase.campaigns.models import Campaign
from dialbase.campaigns.service import update_campaign
from dialbase.config import Settings
from dialbase.db import backend_name, session_scope
from dialbase.errors import database_unavailable
from dialbase.imports import chunks, engine
from dialbase.imports.engine import Work, run_chunk, run_import
from dialbase.leads.models import Lead
from dialbase.sqlite_writer import SQLiteWriter
from tests.conftest import Backend
from tests.faults.lost import lost_connection
from tests.imports.support import Acme, acme, numbers, queue, record, results, sessions

__all__ = ["acme", "sessions"]  # fixtures

PHONE = "phone number should be numeric and must be between 3 to 16 digits and allows prefix +"
FUTURE = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d")


async def test_each_row_rule_rejects_with_addcampaigndata_s_message(sessions, acme: Acme, settings):
    columns = ["PhoneNumber", "Name", "Priority", "ExpiryDate", "city"]
    rows = [
        ["+919812345601", "Asha", "", None, "Pune"],  # 0 added, blank cells absent
        ["12", "Short"],  # 1 check 8
        [None, "No phone"],  # 2 check 8 (absent)
        ["+919800000001", "Listed"],  # 3 check 8b
        ["+919800000001", "Listed", "100"],  # 4 8b comes before 9
        ["+919812345602", "Bad priority", "100"],  # 5 check 9
        ["+919812345603", "Bad date", "", "tomorrow"],  # 6 check 10
        ["+919812345604", "Past", "", "2020-01-01"],  # 7 check 11
        ["+919812345601", "Again"],  # 8 duplicate of row 0
        ["+919812345605", "x" * 2000],  # 9 over 2,000 characters with the number
        [9812345606, "Number", 7, FUTURE, "   "],  # 10 numbers as JSON numbers
    ]
    import_id = await queue(sessions, acme, columns, rows)
    await run_import(sessions, settings, import_id)
    assert await results(sessions, import_id) == [
        (0, "+919812345601", "added", None),
        (1, "12", "rejected", PHONE),
        (2, None, "rejected", PHONE),
        (3, "+919800000001", "rejected", "PhoneNumber Added is a DND Number"),
        (4, "+919800000001", "rejected", "PhoneNumber Added is a DND Number"),
        (
            5,
            "+919812345602",
            "rejected",
            "The priority value must be numeric and range from 0 to 99.",
        ),
        (
            6,
            "+919812345603",
            "rejected",
            "Invalid date format. Please pass date in format yyyy-MM-dd HH:mm:ss or yyyy-MM-dd",
        ),
        (7, "+919812345604", "rejected", "The expiry date and time must be in the future"),
        (8, "+919812345601", "duplicate", "Number Already Exist"),
        (9, "+919812345605", "rejected", "Row exceeds 2000 characters"),
        (10, "9812345606", "added", None),
    ]
    done = await record(sessions, import_id)
    assert (done.status, done.total, done.added, done.duplicates, done.rejected) == (
        "done",
        11,
        2,
        1,
        8,
    )
    async with session_scope(sessions, read_only=True) as session:
        leads = list(
            await session.scalars(
                select(Lead).where(Lead.campaign_id == acme.campaigns["Sales"]).order_by(Lead.id)
            )
        )
    assert [(x.phone_number, x.name, x.priority, x.extra) for x in leads] == [
        ("+919812345601", "Asha", 1, {"city": "Pune"}),
        ("9812345606", "Number", 7, {}),
    ]
    assert leads[1].expires_at is not None


async def test_agent_and_skill_rules(sessions, acme: Acme, settings):
    agents = await queue(
        sessions,
        acme,
        ["phonenumber", "AgentID"],
        [["+919812345611"], ["+919812345612", "A999"], ["+919812345613", "A200"]],
        campaign="Agents",
    )
    skills = await queue(
        sessions,
        acme,
        ["PHONENUMBER", "Skill"],
        [["+919812345621"], ["+919812345622", "french"], ["+919812345623", "english"]],
        campaign="Skills",
    )
    await run_import(sessions, settings, agents)
    await run_import(sessions, settings, skills)
    assert await results(sessions, agents) == [
        (0, "+919812345611", "rejected", "Agent Is Empty!"),
        (1, "+919812345612", "rejected", "Agent is not correctly mapped!"),
        (2, "+919812345613", "added", None),
    ]
    assert await results(sessions, skills) == [
        (0, "+919812345621", "rejected", "Please provide valid skill"),
        (1, "+919812345622", "rejected", "Please provide valid skill"),
        (2, "+919812345623", "added", None),
    ]


async def test_duplicates_follow_the_decided_rule_and_the_first_added_row_wins(
    sessions, acme: Acme, settings
):
    rows = [["+919812345631", "100"], ["+919812345631", "1"], ["+919812345631", "2"]]
    on = await queue(sessions, acme, ["PhoneNumber", "Priority"], rows)
    await run_import(sessions, settings, on)
    assert [r[2:] for r in await results(sessions, on)] == [
        ("rejected", "The priority value must be numeric and range from 0 to 99."),
        ("added", None),
        ("duplicate", "Number Already Exist"),
    ]
    again = await queue(sessions, acme, ["PhoneNumber"], [["+919812345631"]])
    await run_import(sessions, settings, again)
    assert [r[2] for r in await results(sessions, again)] == ["duplicate"]
    off = await queue(sessions, acme, ["PhoneNumber", "Priority"], rows[1:], check_duplicate=False)
    await run_import(sessions, settings, off)
    assert [r[2] for r in await results(sessions, off)] == ["added", "added"]
    assert await numbers(sessions, acme.campaigns["Sales"]) == ["+919812345631"] * 3


async def test_start_starts_the_campaign_after_the_last_row(sessions, acme: Acme, settings):
    import_id = await queue(sessions, acme, ["PhoneNumber"], [["+919812345641"]], start=True)
    async with session_scope(sessions, read_only=True) as session:
        assert (
            await session.scalar(select(Campaign.running).where(Campaign.name == "Sales")) is False
        )
    await run_import(sessions, settings, import_id)
    async with session_scope(sessions, read_only=True) as session:
        assert (
            await session.scalar(select(Campaign.running).where(Campaign.name == "Sales")) is True
        )


@pytest.fixture
async def writer(settings: Settings) -> AsyncIterator[SQLiteWriter | None]:
    """The SQLite writer a process holds (none on PostgreSQL)."""
    if backend_name(settings.database_url) != "sqlite":
        yield None
        return
    sqlite = SQLiteWriter(settings)
    yield sqlite
    await sqlite.close()


def _rows(count: int) -> list[list[str]]:
    return [[f"+9198100{i:05d}"] for i in range(count)]


async def test_a_crash_after_a_committed_chunk_resumes_without_adding_twice(
    sessions, acme: Acme, settings: Settings, writer
):
    import_id = await queue(sessions, acme, ["PhoneNumber"], _rows(450) + _rows(10))
    first = Work(import_id, engine.limits_of(settings), owner="gone", chunk_rows=200, sqlite=writer)
    state = await run_chunk(sessions, first)
    assert state is not None and (state.status, state.next_row) == ("running", 200)
    # The worker is gone; its lease lapses; another one finishes the import.
    seen: list[tuple[int, int]] = []
    await run_import(sessions, settings, import_id, lambda done, total: seen.append((done, total)))
    assert seen == [(460, 460)]  # one chunk from the committed cursor (200) to the end
    assert await numbers(sessions, acme.campaigns["Sales"]) == [r[0] for r in _rows(450)]
    done = await record(sessions, import_id)
    assert (done.added, done.duplicates, done.rejected) == (450, 10, 0)
    assert [r[0] for r in await results(sessions, import_id)] == list(range(460))


async def test_a_connection_lost_at_the_chunk_s_last_statement_rolls_it_back_and_it_is_redone(
    sessions, acme: Acme, settings: Settings, backend: Backend, writer, monkeypatch
):
    """The connection is lost at the chunk's last statement (the import's row: cursor and
    counters): nothing of the chunk stays, and it is redone from the same cursor."""
    import_id = await queue(sessions, acme, ["PhoneNumber"], _rows(250))
    store = chunks.SQLiteChunkStore if backend.name == "sqlite" else chunks.SessionChunkStore
    real_update = store.update_import
    lost: list[int] = []

    def losing_update(self, values):  # type: ignore[no-untyped-def]
        if lost:
            return real_update(self, values)
        lost.append(values["next_row"])
        if backend.name == "postgres":  # the server really drops the connection
            self._session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        raise lost_connection(backend)

    monkeypatch.setattr(store, "update_import", losing_update)
    work = Work(import_id, engine.limits_of(settings), sqlite=writer)
    with pytest.raises(Exception) as raised:
        await run_chunk(sessions, work)
    assert database_unavailable(raised.value)
    assert lost == [250]
    assert await numbers(sessions, acme.campaigns["Sales"]) == []
    assert await results(sessions, import_id) == []
    assert (await record(sessions, import_id)).next_row == 0
    await run_import(sessions, settings, import_id)
    assert await numbers(sessions, acme.campaigns["Sales"]) == [r[0] for r in _rows(250)]
    done = await record(sessions, import_id)
    assert (done.status, done.added, done.next_row) == ("done", 250, 250)


async def test_rows_are_judged_again_when_the_settings_change_before_the_chunk_is_written(
    sessions, acme: Acme, settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    """Rows are checked outside the chunk's transaction; a settings change in between
    (here an agent added to the campaign) makes the chunk check them again."""
    import_id = await queue(
        sessions, acme, ["PhoneNumber", "AgentId"], [["+919812345641", "A300"]], campaign="Agents"
    )
    real_judge = engine._judge
    judged: list[list[str]] = []

    def judge_then_change(plan, limits):  # type: ignore[no-untyped-def]
        verdicts = real_judge(plan, limits)
        judged.append([type(v).__name__ for v in verdicts])
        if len(judged) == 1:
            asyncio.run_coroutine_threadsafe(add_agent(), loop).result(timeout=30)
        return verdicts

    async def add_agent() -> None:
        async with session_scope(sessions) as session:
            await update_campaign(session, "acme", "Agents", agents=["A100", "A200", "A300"])

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(engine, "_judge", judge_then_change)
    await run_import(sessions, settings, import_id)
    assert judged == [["Unless"], ["Listed"]]  # "Agent is not correctly mapped!", then added
    assert await results(sessions, import_id) == [(0, "+919812345641", "added", None)]
    assert await numbers(sessions, acme.campaigns["Agents"]) == ["+919812345641"]
