"""Shared pieces of the import engine's tests: a database of their own (no runner in the
background unless a test starts one), account "acme" with its campaigns, queuing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from dialbase.accounts.models import Account
from dialbase.campaigns.models import Campaign
from dialbase.config import Settings
from dialbase.db import create_engine, make_sessionmaker, session_scope
from dialbase.dnc.service import put_entry
from dialbase.imports.models import Import, ImportResult
from dialbase.imports.service import ImportRequest, queue_rows
from dialbase.leads.models import Lead
from tests.factories import Sessions, make_account, make_campaign


@dataclass
class Acme:
    account_id: int
    campaigns: dict[str, int]


@pytest.fixture
async def sessions(settings: Settings) -> AsyncIterator[Sessions]:
    engine = create_engine(settings)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def acme(sessions: Sessions) -> Acme:
    await make_account(sessions, timezone="Asia/Kolkata")
    await make_campaign(sessions)
    await make_campaign(sessions, "Agents", routing="agentwise", agents=["A100", "A200"])
    await make_campaign(sessions, "Skills", routing="skillwise", skills=["english"])
    async with session_scope(sessions) as session:
        account = await session.scalar(select(Account).where(Account.username == "acme"))
        assert account is not None
        await put_entry(session, account, "+919800000001")
        ids = dict((await session.execute(select(Campaign.name, Campaign.id))).all())
    return Acme(account.id, {str(k): int(v) for k, v in ids.items()})


async def queue(
    sessions: Sessions,
    acme: Acme,
    columns: list[str],
    rows: Sequence[Sequence[Any]],
    *,
    campaign: str = "Sales",
    check_duplicate: bool = True,
    start: bool = False,
    callback_url: str | None = None,
) -> int:
    request = ImportRequest(
        acme.account_id,
        acme.campaigns[campaign],
        "bulk",
        columns,
        check_duplicate,
        start,
        callback_url,
        public_url="https://dialbase.example",
    )
    async with session_scope(sessions) as session:
        return await queue_rows(session, request, rows)


async def results(
    sessions: Sessions, import_id: int
) -> list[tuple[int, str | None, str, str | None]]:
    async with session_scope(sessions, read_only=True) as session:
        found = await session.execute(
            select(
                ImportResult.idx,
                ImportResult.phone_number,
                ImportResult.result,
                ImportResult.message,
            )
            .where(ImportResult.import_id == import_id)
            .order_by(ImportResult.idx)
        )
        return [tuple(row) for row in found]  # type: ignore[misc]


async def record(sessions: Sessions, import_id: int) -> Import:
    async with session_scope(sessions, read_only=True) as session:
        found = await session.get(Import, import_id)
        assert found is not None
        return found


async def numbers(sessions: Sessions, campaign_id: int) -> list[str]:
    async with session_scope(sessions, read_only=True) as session:
        found = await session.scalars(
            select(Lead.phone_number).where(Lead.campaign_id == campaign_id).order_by(Lead.id)
        )
        return list(found)
