"""Deleting leads: deleteCampaignData and DeleteBulkData (the API family's contract, §2
and §3), and the soft deletion they share with ``DELETE /v1/campaigns/{c}/leads``.

No web framework here: the routes pass the body's values (``auth.lower_keys``), the
credentials and the client address, and get an ``Answer``.

Deletion is soft. A deleted lead keeps its row, its status becomes ``deleted`` and
``deleted_at`` says when; every reader leaves it out (the queue, listings and lead
counts, exports, explain and forecast) while its leases (attempts, outcomes) stay in the
statistics. The campaign's number guard (``leads.models.CampaignNumber``, the exact
duplicate check) is deleted with the number's last live lead, in the same transaction:

1. the guards of the (campaign, number) pairs are locked (PostgreSQL, in key order, the
   order the write batches lock them in) and deleted. A write batch adding one of those
   numbers meanwhile either committed before the lock was granted (its lead is then seen
   by step 2 and deleted too, as if it had come first) or waits for this transaction and
   then inserts a new guard (its lead is new: it came after the deletion);
2. the live leads of those pairs (with ``name``: only those of that name, compared
   case-insensitively) become ``deleted``;
3. the guards of the pairs that still have live leads are inserted again.

SQLite runs one writer at a time (``session_scope`` begins with the write lock), so
nothing interleaves there. Numbers are compared in the E.164 form AddCampaignData stored
(``phones.e164`` with the account's default country).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialbase import phones
from dialbase.campaigns.models import Campaign
from dialbase.compat import answers, fields
from dialbase.compat.answers import Answer, false_body
from dialbase.compat.auth import Credentials, FamilyAuth
from dialbase.compat.directory import AccountInfo
from dialbase.db import session_scope, utcnow
from dialbase.leads.models import CampaignNumber, Lead, LeadStatus
from dialbase.webhooks import service as webhooks

DELETE_ONE = "deleteCampaignData"  # the endpoint's name in the rate limiter
DELETE_BULK = "DeleteBulkData"
BULK_PER_MINUTE = 2
MAX_BULK = 100
# The class of PostgreSQL advisory lock a bulk deletion holds for its account (the other
# key is the account id): tried without waiting, released by the transaction's end.
BULK_LOCK_CLASS = 0x44420001 & 0x7FFFFFFF

DELETED = LeadStatus.DELETED.value

SEVERAL_NUMBERS = false_body("Invalid Json Pass Valid Json")
CAMPAIGN_MISSING = {"status": "Error", "message": "Campaign should not be null are empty"}
CAMPAIGN_INVALID = {"status": "Error", "message": "Passed campaign are invalid"}
PHONE_MISSING = {"status": "Error", "message": "PhoneNumber should not be null are empty"}
NO_RECORD = {"status": "Error", "message": "No Record Found"}
DELETED_ONE = {"status": "Success", "message": "Deleted Successfully"}
PHONES_MISSING = {"status": "Error", "message": "PhoneNumbers should not be null are empty"}
TOO_MANY = {
    "status": "Error",
    "message": "A maximum of 100 phone numbers or 100 campaign names can be processed per request",
}
MAX_LIMIT = {"status": "Error", "message": "Max limit exceeded"}


def deleted_bulk(count: int) -> answers.Body:
    return {"status": "Success", "message": "Deleted Successfully", "deleted": count}


class _NothingDeleted(Exception):
    """Raised inside the transaction to roll it back: no lead matched."""


class _Busy(Exception):
    """Raised inside the transaction: another bulk deletion of the account is running."""


# The writes -------------------------------------------------------------------------


async def delete_numbers(
    session: AsyncSession,
    campaign_ids: Iterable[int],
    numbers: Iterable[str],
    name: str | None = None,
) -> int:
    """Delete the live leads of ``numbers`` (E.164 form) in every one of the campaigns
    (with ``name``: only the leads of that name, case-insensitively); the number deleted.
    Steps 1 to 3 of the module's description; only flushes."""
    ids = sorted(set(campaign_ids))
    wanted = sorted({number for number in numbers if "\x00" not in number})  # none has NUL
    if not ids or not wanted:
        return 0
    guards = and_(CampaignNumber.campaign_id.in_(ids), CampaignNumber.phone_number.in_(wanted))
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        await session.execute(
            select(CampaignNumber.campaign_id)
            .where(guards)
            .order_by(CampaignNumber.campaign_id, CampaignNumber.phone_number)
            .with_for_update()
        )
    await session.execute(delete(CampaignNumber).where(guards))
    live = and_(Lead.campaign_id.in_(ids), Lead.phone_e164.in_(wanted), Lead.status != DELETED)
    chosen = live
    if name is not None:
        rows = await session.execute(select(Lead.id, Lead.name).where(live))
        matching = [lead_id for lead_id, lead_name in rows if same_name(lead_name, name)]
        chosen = and_(Lead.id.in_(matching), Lead.status != DELETED)
    deleted = await session.execute(
        update(Lead)
        .where(chosen)
        .values(status=DELETED, deleted_at=utcnow())
        .returning(Lead.id, Lead.campaign_id, Lead.phone_number, Lead.name)
        .execution_options(synchronize_session=False)
    )
    gone = [(row.id, row.campaign_id, row.phone_number, row.name) for row in deleted]
    await webhooks.leads_deleted(session, gone)  # one lead.deleted per lead
    count = len(gone)
    remaining = select(Lead.campaign_id, Lead.phone_e164).where(live).distinct()
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        insert(CampaignNumber)
        .from_select(["campaign_id", "phone_number"], remaining)
        .on_conflict_do_nothing()
    )
    return count


def same_name(stored: str | None, given: str) -> bool:
    """Names compared case-insensitively (Unicode case folding), outer spaces ignored."""
    return stored is not None and stored.strip().casefold() == given.strip().casefold()


def number_text(value: Any) -> str | None:
    """A number as sent (a JSON string or integer), trimmed; None for any other value."""
    text = fields.as_text(value)
    return text.strip() if text is not None else None


# The endpoints ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _NameFilter:
    """The optional ``name`` of deleteCampaignData: absent (None), or a text to match."""

    text: str | None
    matches_nothing: bool = False  # a value no lead's name can be (an array, a number)


def _name_filter(value: Any) -> _NameFilter:
    if value is None or (isinstance(value, str) and not value.strip()):
        return _NameFilter(None)
    text = fields.as_text(value)
    if text is None:
        return _NameFilter(None, matches_nothing=True)
    return _NameFilter(text.strip())


class Deletion:
    def __init__(self, auth: FamilyAuth, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.auth = auth
        self.sessionmaker = sessionmaker
        self._bulk_running: set[int] = set()  # accounts with a bulk deletion in this process

    async def delete_one(
        self, values: Mapping[str, Any], credentials: Credentials, address: str
    ) -> Answer:
        """deleteCampaignData: authentication, the rate limit, checks 1 to 5, the deletion."""
        identified = await self.auth.identify(values, credentials, address)
        if isinstance(identified, Answer):
            return identified
        account = identified
        refused = await self.auth.over_limit(account, DELETE_ONE)
        if refused is not None:
            return refused
        phone = values.get("phonenumber")
        if isinstance(phone, list | dict):
            return Answer(SEVERAL_NUMBERS)
        if fields.is_blank(values.get("campaignname")):
            return Answer(CAMPAIGN_MISSING)
        campaign_name = (fields.as_text(values["campaignname"]) or "").strip()
        name = _name_filter(values.get("name"))
        try:
            async with session_scope(self.sessionmaker) as session:
                found = await _campaign_ids(session, account, [campaign_name])
                if found is None:
                    return Answer(CAMPAIGN_INVALID)
                if fields.is_blank(phone):
                    return Answer(PHONE_MISSING)
                number = phones.e164(number_text(phone) or "", account.default_country)
                if name.matches_nothing:
                    raise _NothingDeleted
                if not await delete_numbers(session, found, [number], name.text):
                    raise _NothingDeleted
        except _NothingDeleted:
            return Answer(NO_RECORD)
        return Answer(DELETED_ONE)

    async def delete_bulk(
        self, values: Mapping[str, Any], credentials: Credentials, address: str
    ) -> Answer:
        """DeleteBulkData: authentication, checks 1 to 5 (every identified request counts
        against the account's 2 per minute), the deletion in one transaction."""
        identified = await self.auth.identify(values, credentials, address)
        if isinstance(identified, Answer):
            return identified
        account = identified
        over = await self.auth.limiter.hit_account(account.id, BULK_PER_MINUTE, DELETE_BULK)
        checked = _bulk_request(values)
        if isinstance(checked, Answer):
            return checked
        numbers, campaign_names = checked
        if over:
            return Answer(MAX_LIMIT)
        if account.id in self._bulk_running:
            return Answer(MAX_LIMIT)
        self._bulk_running.add(account.id)
        try:
            return await self._delete_bulk(account, numbers, campaign_names)
        finally:
            self._bulk_running.discard(account.id)

    async def _delete_bulk(
        self, account: AccountInfo, numbers: list[str], campaign_names: list[str]
    ) -> Answer:
        wanted = {phones.e164(number, account.default_country) for number in numbers}
        try:
            async with session_scope(self.sessionmaker) as session:
                found = await _campaign_ids(session, account, campaign_names)
                if found is None:
                    return Answer(CAMPAIGN_INVALID)
                if not await _bulk_lock(session, account.id):
                    raise _Busy
                count = await delete_numbers(session, found, wanted)
        except _Busy:
            return Answer(MAX_LIMIT)
        return Answer(deleted_bulk(count))


def _bulk_request(values: Mapping[str, Any]) -> tuple[list[str], list[str]] | Answer:
    """Checks 1 to 3 of DeleteBulkData: the numbers and the campaign names, trimmed."""
    raw_numbers = values.get("phonenumber")
    if not isinstance(raw_numbers, list) or not raw_numbers:
        return Answer(PHONES_MISSING)
    numbers = [number_text(item) for item in raw_numbers]
    if any(not number for number in numbers):  # a blank, null or non-number element
        return Answer(PHONES_MISSING)
    raw_names = values.get("campaignname")
    if not isinstance(raw_names, list) or not raw_names:
        return Answer(CAMPAIGN_MISSING)
    if len(raw_numbers) > MAX_BULK or len(raw_names) > MAX_BULK:
        return Answer(TOO_MANY)
    names = [item.strip() if isinstance(item, str) else "" for item in raw_names]
    return [number for number in numbers if number], names


async def _campaign_ids(
    session: AsyncSession, account: AccountInfo, names: Sequence[str]
) -> list[int] | None:
    """The ids of the account's campaigns of those names, read in the transaction; None
    when any name is blank or names no campaign of the account."""
    wanted = set(names)
    if not wanted or "" in wanted or any("\x00" in name for name in wanted):
        return None
    rows = (
        await session.execute(
            select(Campaign.id, Campaign.name).where(
                Campaign.account_id == account.id, Campaign.name.in_(wanted)
            )
        )
    ).all()
    if {name for _, name in rows} != wanted:
        return None
    return [campaign_id for campaign_id, _ in rows]


async def _bulk_lock(session: AsyncSession, account_id: int) -> bool:
    """Whether this transaction may run the account's bulk deletion. PostgreSQL: a
    transaction-level advisory lock, tried without waiting (one at a time across workers
    and hosts). SQLite: the transaction already holds the database's only write lock, so
    bulk deletions of other processes wait for it and run after it (the process's own
    ones are refused by ``Deletion``)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    taken = await session.scalar(
        select(func.pg_try_advisory_xact_lock(BULK_LOCK_CLASS, account_id))
    )
    return bool(taken)
