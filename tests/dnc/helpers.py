"""Shared by the do-not-call tests: the account, its default country, raw entries."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialbase.accounts.models import Account
from dialbase.accounts.service import bump_revision, get_account
from dialbase.db import session_scope, utcnow
from dialbase.dnc.models import DncEntry
from tests.factories import make_account, make_campaign

Sessions = async_sessionmaker[AsyncSession]
AUTH = httpx.BasicAuth("acme", "acme-secret-key")
PROBLEM = "application/problem+json"


async def acme(sessions: Sessions, *, country: str | None = None) -> None:
    """Account "acme" with its general outbound campaign "Sales" (stopped)."""
    await make_account(sessions)
    await make_campaign(sessions)
    if country is not None:
        await set_country(sessions, country)


async def set_country(sessions: Sessions, country: str | None, username: str = "acme") -> None:
    """The account's default country, written straight to the database."""
    async with session_scope(sessions) as session:
        await session.execute(
            update(Account).where(Account.username == username).values(default_country=country)
        )
        await bump_revision(session)


async def add_raw_entry(
    sessions: Sessions,
    number: str,
    *,
    expires_at: datetime | None = None,
    username: str = "acme",
) -> None:
    """An entry stored as is (no checks), for expiries already in the past."""
    async with session_scope(sessions) as session:
        account = await get_account(session, username)
        session.add(DncEntry(account_id=account.id, number=number, expires_at=expires_at))


def minutes_ago(minutes: float) -> datetime:
    return utcnow() - timedelta(minutes=minutes)


def assert_problem(response: httpx.Response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["type"] == "about:blank" and body["title"]
    for word in words:
        assert word in body["detail"], body["detail"]
    return body
