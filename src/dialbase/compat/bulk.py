"""Add Campaign Bulk Data (V4): the request's checks, in the contract's order, and queueing
the import. No web framework here: the route passes the body's values (``auth.lower_keys``),
the header credentials and the client address, and gets an ``Answer``.

Every answer of this endpoint is ``{"status": "error", "message": ...}`` (``error``) but the
success. The checks, the first that fails answering:

1. blank API key: the ``apiKey`` header when it is sent and not blank, else the body's
   ``apiKey`` (or ``api_key``); 2. blank ``userName``; 3. no such account with that key
   (1 to 3 count against the client address's budget of failed authentications, as on
   every endpoint of the family); 4. account not ``BASIC_AUTH``. With ``Authorization:
   Bearer``, the family's token checks in the same words put in this shape, then 2 and 3
   against the token's account, and 4 for an account that is not ``TOKEN_AUTH``.
5. blank or unknown ``campaignName``; 6. inbound campaign; 7. ``bulkData`` malformed;
8. no ``PhoneNumber`` column; 9. over 500 rows; 10. ``callBackUrl`` refused
(``callback_urls``); 11. the account over its bulk requests per minute.

Every request whose account was identified (check 3 passed, or a valid token) is counted
against the account's bulk budget at once, whatever it is answered; check 11 only decides
the answer, after 4 to 10. The callback URL's host name is resolved before the transaction
(never inside it: on SQLite that holds the write lock). The campaign is then read again in
the transaction that queues the import (``imports.service.queue_rows``), which commits before
the success is answered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialbase.accounts.models import AuthMode
from dialbase.callback_urls import check_callback_url_async
from dialbase.campaigns.models import Campaign, Direction
from dialbase.compat import answers, fields
from dialbase.compat.answers import Answer
from dialbase.compat.auth import Credentials, FamilyAuth
from dialbase.compat.directory import AccountInfo, CampaignInfo
from dialbase.config import Settings
from dialbase.db import session_scope
from dialbase.imports.service import ImportRequest, queue_rows

ENDPOINT = "AddCampaignBulkDataV4"  # the endpoint's name in the rate limiter
MAX_ROWS = 500
PHONE_COLUMN = "phonenumber"

CheckUrl = Callable[[str, bool], Awaitable[str | None]]


def error(message: str) -> answers.Body:
    return {"status": "error", "message": message}


API_KEY_MISSING = error("apiKey should not be empty")  # check 1
USERNAME_MISSING = error("userName should not be empty")  # check 2
INVALID_USER = error("Invalid userName or apiKey")  # check 3
INVALID_ACTION = error("Invalid action.")  # check 4
INVALID_CAMPAIGN = error("Invalid campaignName")  # check 5
NOT_OUTBOUND = error("The selected campaign is not outbound")  # check 6
INVALID_DATA = error("Please provide valid data")  # check 7
NO_PHONE_COLUMN = error("PhoneNumber column does not exist")  # check 8
TOO_MANY_ROWS = error("The maximum count of data to be added is 500 per request")  # check 9
INVALID_CALLBACK = error("Invalid callBackUrl")  # check 10
LIMIT_EXHAUSTED = error("Request limit exhausted")  # check 11 (HTTP 429)


def queued(transaction_id: int) -> answers.Body:
    return {
        "transactionId": str(transaction_id),
        "status": "success",
        "message": "queued successfully",
    }


def limit_exhausted(retry_after: int) -> Answer:
    return Answer(LIMIT_EXHAUSTED, 429, {"Retry-After": str(retry_after)})


def in_shape(answer: Answer) -> Answer:
    """A family answer (``{"status": "false", ...}``) in this endpoint's shape; its HTTP
    429 (the address over its budget) as this endpoint's own."""
    if answer.status == 429:
        return Answer(LIMIT_EXHAUSTED, 429, answer.headers)
    return Answer(error(str(answer.body.get("message", ""))), answer.status, answer.headers)


@dataclass(frozen=True, slots=True)
class BulkData:
    """``bulkData`` as checked: the map and the rows, exactly as sent."""

    columns: list[str]
    rows: list[list[Any]]


def bulk_data(value: Any) -> BulkData | None:
    """Check 7: an object whose ``map`` is a non-empty list of non-blank strings and whose
    ``data`` is a non-empty list of lists, none longer than ``map``, of cells that are
    strings, numbers or null (*ours*: no NUL character in any text). None when not."""
    if not isinstance(value, dict):
        return None
    columns = _value(value, "map")
    rows = _value(value, "data")
    if not isinstance(columns, list) or not columns or not isinstance(rows, list) or not rows:
        return None
    if not all(isinstance(name, str) and name.strip() and "\x00" not in name for name in columns):
        return None
    width = len(columns)
    for row in rows:
        if not isinstance(row, list) or len(row) > width or not all(map(_cell, row)):
            return None
    return BulkData(columns, rows)


def _value(mapping: Mapping[str, Any], key: str) -> Any:
    """A key of ``bulkData`` in any letter case (the first spelling wins)."""
    for name, value in mapping.items():
        if name.lower() == key:
            return value
    return None


def _cell(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" not in value
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def blank(value: Any) -> bool:
    """Absent, null, empty or only spaces. Any other value is present (an array or an
    object as a key or a name is then simply not a valid one)."""
    return value is None or (isinstance(value, str) and not value.strip())


def check_duplicate(values: Mapping[str, Any]) -> bool:
    """The duplicate rule: ``isDelete`` when the request has that key (whatever its value),
    else ``checkDuplicate``; either read as AddCampaignData reads ``checkDuplicate`` (JSON
    ``true`` or the string ``true`` in any case: on; anything else: off)."""
    if "isdelete" in values:
        return fields.check_duplicate(values["isdelete"])
    return fields.check_duplicate(values.get("checkduplicate"))


def starts(values: Mapping[str, Any]) -> bool:
    """``action`` ``start`` (any case, outer spaces ignored); any other value does nothing."""
    text = fields.as_text(values.get("action"))
    return text is not None and text.strip().lower() == "start"


class AddCampaignBulkData:
    def __init__(
        self,
        auth: FamilyAuth,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        check_url: CheckUrl = check_callback_url_async,
    ) -> None:
        self.auth = auth
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.check_url = check_url

    async def handle(
        self,
        values: Mapping[str, Any],
        credentials: Credentials,
        address: str,
        public_url: str | None = None,
    ) -> Answer:
        """The contract's checks 1 to 11 in order, then the import queued and committed.
        ``public_url``: the service's address as the client reached it (the callback's
        ``failedFilePath`` is built on it)."""
        identified = await self._identify(values, credentials, address)
        if isinstance(identified, Answer):
            return identified
        account, over = identified
        if credentials.bearer is None and account.auth_mode != AuthMode.BASIC_AUTH:
            return Answer(INVALID_ACTION)  # (a token's account was checked by _bearer)
        campaign = await self._campaign(account, values.get("campaignname"))
        if isinstance(campaign, Answer):
            return campaign
        checked = await self._request(values)
        if isinstance(checked, Answer):
            return checked
        data, callback_url = checked
        if over:
            return limit_exhausted(over)
        request = ImportRequest(
            account_id=account.id,
            campaign_id=campaign.id,
            source="bulk",
            columns=data.columns,
            check_duplicate=check_duplicate(values),
            start=starts(values),
            callback_url=callback_url,
            public_url=public_url,
        )
        async with session_scope(self.sessionmaker) as session:
            if not await _campaign_still_there(session, campaign.id):
                return Answer(INVALID_CAMPAIGN)
            transaction_id = await queue_rows(session, request, data.rows)
        return Answer(queued(transaction_id))

    async def _identify(
        self, values: Mapping[str, Any], credentials: Credentials, address: str
    ) -> tuple[AccountInfo, int | None] | Answer:
        """Checks 1 to 3 (with a token: the token's checks, 4, 2 and 3), the request counted
        against the account's budget once the account is known. The account and the
        Retry-After seconds when it is over its budget (None: within it)."""
        if credentials.bearer is not None:
            return await self._bearer(values, credentials.bearer, address)
        key: Any = credentials.api_key
        if blank(key):
            key = values.get("apikey")
        if blank(key):
            return in_shape(await self.auth.refused(address, API_KEY_MISSING))
        if blank(values.get("username")):
            return in_shape(await self.auth.refused(address, USERNAME_MISSING))
        username = fields.as_text(values["username"]) or ""
        account = await self.auth.key_account(username, fields.as_text(key) or "")
        if account is None:
            return in_shape(await self.auth.refused(address, INVALID_USER))
        return account, await self._count(account)

    async def _bearer(
        self, values: Mapping[str, Any], token: str, address: str
    ) -> tuple[AccountInfo, int | None] | Answer:
        found = await self.auth.bearer_account(token, address)
        if isinstance(found, Answer):
            if found.body is answers.NOT_BASIC_AUTH:  # a valid token of a non-token account
                account = await self._token_account(token)
                if account is not None:
                    await self._count(account)
                return Answer(INVALID_ACTION)
            return in_shape(found)
        account = found
        over = await self._count(account)
        if blank(values.get("username")):
            return Answer(USERNAME_MISSING)
        if fields.as_text(values["username"]) != account.username:
            return in_shape(await self.auth.refused(address, INVALID_USER))
        return account, over

    async def _token_account(self, token: str) -> AccountInfo | None:
        claims = await self.auth.tokens.verify(token)
        return None if claims is None else await self.auth.directory.account(claims.username)

    async def _count(self, account: AccountInfo) -> int | None:
        return await self.auth.limiter.hit_account(
            account.id, self.settings.bulk_rate_limit, ENDPOINT
        )

    async def _campaign(self, account: AccountInfo, value: Any) -> CampaignInfo | Answer:
        """Checks 5 and 6, from the account's campaigns (read after the account was, so
        as new as it)."""
        if blank(value):
            return Answer(INVALID_CAMPAIGN)
        name = (fields.as_text(value) or "").strip()
        campaign = await self.auth.directory.campaign(account.id, name)
        if campaign is None:
            return Answer(INVALID_CAMPAIGN)
        if campaign.direction != Direction.OUTBOUND:
            return Answer(NOT_OUTBOUND)
        return campaign

    async def _request(self, values: Mapping[str, Any]) -> tuple[BulkData, str | None] | Answer:
        """Checks 7 to 10: the rows and the callback URL (None when absent or blank)."""
        data = bulk_data(values.get("bulkdata"))
        if data is None:
            return Answer(INVALID_DATA)
        if not any(name.lower() == PHONE_COLUMN for name in data.columns):
            return Answer(NO_PHONE_COLUMN)
        if len(data.rows) > MAX_ROWS:
            return Answer(TOO_MANY_ROWS)
        url = values.get("callbackurl")
        if url is None or (isinstance(url, str) and not url.strip()):
            return data, None
        if not isinstance(url, str):
            return Answer(INVALID_CALLBACK)
        url = url.strip()
        if await self.check_url(url, self.settings.allow_private_callbacks) is not None:
            return Answer(INVALID_CALLBACK)
        return data, url


async def _campaign_still_there(session: AsyncSession, campaign_id: int) -> bool:
    """The campaign, read in the queueing transaction (on PostgreSQL its row share-locked
    until the commit, so that it cannot be deleted before the import refers to it)."""
    statement = select(Campaign.id).where(Campaign.id == campaign_id)
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(read=True)
    return await session.scalar(statement) is not None
