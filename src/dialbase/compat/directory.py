"""A worker's cache of accounts and campaigns, kept exact by the configuration revision.

Entries are loaded on first use and remember the revision they were read at. Every
change of an account or a campaign (CLI or API, any process) gives the revision a new
random value in the database (``accounts.service.bump_revision``). A write batch refuses
leads checked against any other revision than the database's current one; a rejected
request is checked again when the revision moved. Because a revision value never comes
back, a database dropped and recreated, or restored from a backup, never matches a cache
filled from another one: its leads are refused as stale and checked against fresh data.
Nothing is ever cached as missing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Select, exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialbase.accounts.models import Account, ConfigRevision
from dialbase.accounts.service import hash_api_key, key_matches
from dialbase.campaigns.models import Campaign
from dialbase.dialer import hours
from dialbase.dialer.hours import CallingHours
from dialbase.observability.logs import note_account
from dialbase.webhooks.models import Webhook

T = TypeVar("T")
NO_ACCOUNT = "0" * 64  # compared with when the user name is unknown, so both paths hash


@dataclass(frozen=True, slots=True)
class AccountInfo:
    id: int
    username: str
    api_key_hash: str
    auth_mode: str
    zone: ZoneInfo
    rate_limit: int
    revision: int
    default_country: str | None = None
    max_daily_attempts: int = 0
    token_id: str | None = None  # the id of the newest bearer token (older ones are refused)
    # Whether the account has any webhook (its own or a campaign's): the hot write paths
    # write webhook events only then (``webhooks.outbox``).
    has_webhooks: bool = False


@dataclass(frozen=True, slots=True)
class CampaignInfo:
    id: int
    name: str
    direction: str
    dial_type: str
    routing: str
    agents: frozenset[str]
    skills: frozenset[str]
    revision: int
    hours: CallingHours | None = None


class Directory:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self.revision = -1
        self._checked_at = 0.0
        self._accounts: dict[str, AccountInfo] = {}
        self._by_key: dict[str, AccountInfo] = {}  # by API key hash
        self._campaigns: dict[tuple[int, str], CampaignInfo] = {}

    def _advance(self, revision: int) -> None:
        if revision != self.revision:
            self.revision = revision
            self._accounts.clear()
            self._by_key.clear()
            self._campaigns.clear()

    async def _current_revision(self, session: AsyncSession) -> int:
        value = await session.scalar(select(ConfigRevision.value).where(ConfigRevision.id == 1))
        self._checked_at = time.monotonic()
        return int(value or 0)

    async def refresh(self, max_age: float = 0.0) -> bool:
        """Drop the cache if the database's revision moved; says whether it did.

        With ``max_age``, a revision read from the database less than that many seconds
        ago is taken as current and nothing is read.
        """
        if max_age and time.monotonic() - self._checked_at < max_age:
            return False
        async with self._sessionmaker() as session:
            revision = await self._current_revision(session)
        moved = revision != self.revision
        self._advance(revision)
        return moved

    def saw_revision(self, revision: int) -> None:
        self._advance(revision)

    async def _load(self, statement: Select[T]) -> tuple[T | None, int]:
        """One row, read after the revision it is at least as new as."""
        async with self._sessionmaker() as session:
            revision = await self._current_revision(session)
            row = await session.scalar(statement)
        self._advance(revision)
        return row, revision

    async def _load_account(self, statement: Select[Any]) -> AccountInfo | None:
        """An account and whether it has webhooks (one statement, whether the account
        exists or not), read after the revision."""
        hooked = exists().where(Webhook.account_id == Account.id).correlate(Account)
        async with self._sessionmaker() as session:
            revision = await self._current_revision(session)
            found = (await session.execute(statement.add_columns(hooked))).first()
        self._advance(revision)
        if found is None:
            return None
        return account_info(found[0], revision, has_webhooks=bool(found[1]))

    async def authenticate(self, username: str, api_key: str) -> AccountInfo | None:
        """The account if ``api_key`` is its key. The cache answers a match; a miss or a
        wrong key reads the account afresh (a key may have just changed), and an unknown
        user name and a wrong key cost the same work: one read, one key comparison."""
        cached = self._accounts.get(username)
        if cached is not None and key_matches(cached.api_key_hash, api_key):
            note_account(username)
            return cached
        account = await self.account(username)
        stored_hash = account.api_key_hash if account is not None else NO_ACCOUNT
        if account is None or not key_matches(stored_hash, api_key):
            return None
        note_account(username)
        return account

    def cached(self, username: str) -> AccountInfo | None:
        """The account as this worker last read it, if it did (may be out of date)."""
        return self._accounts.get(username)

    async def account_by_key(self, api_key: str) -> AccountInfo | None:
        """The account whose key is ``api_key`` (keys are unique across accounts). A miss
        is always read afresh, as in ``authenticate``."""
        key_hash = hash_api_key(api_key)
        cached = self._by_key.get(key_hash)
        if cached is not None:
            return cached
        info = await self._load_account(select(Account).where(Account.api_key_hash == key_hash))
        if info is None:
            return None
        if info.revision == self.revision:
            self._by_key[key_hash] = info
        return info

    async def account(self, username: str) -> AccountInfo | None:
        """The account as the database holds it now (and cached for later)."""
        info = await self._load_account(select(Account).where(Account.username == username))
        if info is None:
            return None
        if info.revision == self.revision:
            self._accounts[username] = info
        return info

    async def campaign(self, account_id: int, name: str) -> CampaignInfo | None:
        key = (account_id, name)
        cached = self._campaigns.get(key)
        if cached is not None:
            return cached
        row, revision = await self._load(
            select(Campaign).where(Campaign.account_id == account_id, Campaign.name == name)
        )
        if row is None:
            return None
        info = campaign_info(row, revision)
        if revision == self.revision:
            self._campaigns[key] = info
        return info


def account_info(row: Account, revision: int, *, has_webhooks: bool = False) -> AccountInfo:
    """What the checks read of an account row, read at ``revision``."""
    return AccountInfo(
        id=row.id,
        username=row.username,
        api_key_hash=row.api_key_hash,
        auth_mode=row.auth_mode,
        zone=ZoneInfo(row.timezone),
        rate_limit=row.rate_limit,
        revision=revision,
        default_country=row.default_country,
        max_daily_attempts=row.max_daily_attempts,
        token_id=row.token_id,
        has_webhooks=has_webhooks,
    )


def campaign_info(row: Campaign, revision: int) -> CampaignInfo:
    """What the checks read of a campaign row, read at ``revision``."""
    return CampaignInfo(
        id=row.id,
        name=row.name,
        direction=row.direction,
        dial_type=row.dial_type,
        routing=row.routing,
        agents=frozenset(row.agents or ()),
        skills=frozenset(row.skills or ()),
        revision=revision,
        hours=hours.parse(row.calling_hours or ""),
    )
