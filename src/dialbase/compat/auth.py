"""Who is calling a ``/ca_apis/...`` endpoint: a basic key or a bearer token.

An account's auth mode decides how it authenticates (docs/api.md, "Authentication"):
``BASIC_AUTH`` accounts send their API key and user name, ``TOKEN_AUTH`` accounts send
``Authorization: Bearer <token>`` (a token from Generate Token) and their user name, and
``NONE`` turns the account's API off. A request with a Bearer header is a token request
whatever else it carries.

No web framework here: the routes pass the body's values (``lower_keys``), the credentials
from the headers (``Credentials``) and the client address, and get the account or the
``Answer`` that refuses the request. Every refused authentication is counted against the
client address's budget (``Limiter.hit_address``), on every endpoint of the family.

``identify`` reads the account afresh (one query): a key rotated or a token superseded on
another worker is refused at once. AddCampaignData's hot path checks against the worker's
cache instead (``fresh=False``), which is exact there too: its write batch refuses leads
checked against an older configuration revision, and generating a token moves it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.types import Scope

from dialbase.accounts.models import AuthMode
from dialbase.accounts.service import key_matches
from dialbase.compat import answers, fields
from dialbase.compat.answers import Answer, false_body
from dialbase.compat.directory import NO_ACCOUNT, AccountInfo, Directory
from dialbase.compat.tokens import Tokens
from dialbase.observability.logs import note_account
from dialbase.ratelimit import Limiter

RATE_LIMITED = "Too many requests for this account or address; retry after {} seconds."
TOKEN_MISSING = false_body("Token Should Not be Null or Empty.")
INVALID_TOKEN = false_body("Invalid Token")
TOKEN_EXPIRED = false_body("Token Expired")


def rate_limited(retry_after: int) -> Answer:
    """HTTP 429 with ``Retry-After``, in the family's ``false`` shape."""
    return Answer(
        false_body(RATE_LIMITED.format(retry_after)), 429, {"Retry-After": str(retry_after)}
    )


def lower_keys(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Body keys lower-cased (the first spelling of a key wins); ``api_key`` is ``apikey``."""
    values: dict[str, Any] = {}
    for key, value in payload.items():
        lowered = key.lower()
        values.setdefault("apikey" if lowered == "api_key" else lowered, value)
    return values


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the headers say about the caller."""

    api_key: str | None  # the ``apiKey`` header, any case; None when absent
    bearer: str | None  # the value of ``Authorization: Bearer <value>`` ("" when blank)

    @classmethod
    def of(cls, headers: Iterable[tuple[str, str]]) -> Credentials:
        api_key: str | None = None
        bearer: str | None = None
        for name, value in headers:
            lowered = name.lower()
            if lowered == "apikey" and api_key is None:
                api_key = value
            elif lowered == "authorization" and bearer is None:
                scheme, _, rest = value.strip().partition(" ")
                if scheme.lower() == "bearer":
                    bearer = rest.strip()
        return cls(api_key, bearer)

    @classmethod
    def from_scope(cls, scope: Scope) -> Credentials:
        # ASGI header names are lower-case bytes: only the two wanted are decoded.
        wanted = (b"apikey", b"authorization")
        return cls.of(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in scope["headers"]
            if name in wanted
        )

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Credentials:
        items = headers.items()
        return cls.of(items)


class FamilyAuth:
    def __init__(self, directory: Directory, limiter: Limiter, tokens: Tokens) -> None:
        self.directory = directory
        self.limiter = limiter
        self.tokens = tokens

    async def identify(
        self,
        values: Mapping[str, Any],
        credentials: Credentials,
        address: str,
        *,
        fresh: bool = True,
    ) -> AccountInfo | Answer:
        """The contract's authentication checks, in order; the account or the refusal.

        With ``fresh=False`` the worker's cache answers; a refusal for the account's auth
        mode is then checked again afresh (the mode may have just changed).
        """
        found = await self._identify(values, credentials, address, fresh=fresh)
        if not fresh and isinstance(found, Answer) and found.body is answers.NOT_BASIC_AUTH:
            return await self._identify(values, credentials, address, fresh=True)
        return found

    async def _identify(
        self, values: Mapping[str, Any], credentials: Credentials, address: str, *, fresh: bool
    ) -> AccountInfo | Answer:
        if credentials.bearer is not None:
            account = await self.bearer_account(credentials.bearer, address, fresh=fresh)
            if isinstance(account, Answer):
                return account
            if fields.is_blank(values.get("username")):
                return Answer(answers.USERNAME_MISSING)
            if fields.as_text(values["username"]) != account.username:
                return await self.refused(address, answers.INVALID_USER)
            return account
        key: Any = credentials.api_key if credentials.api_key is not None else values.get("apikey")
        if key is None:
            return await self.refused(address, answers.API_KEY_MISSING)
        if fields.is_blank(values.get("username")):
            return await self.refused(address, answers.USERNAME_MISSING)
        username = fields.as_text(values["username"]) or ""
        key_text = fields.as_text(key) or ""
        if fresh:
            found = await self.key_account(username, key_text)
        else:
            found = await self.directory.authenticate(username, key_text)
        if found is None:
            return await self.refused(address, answers.INVALID_USER)
        if found.auth_mode != AuthMode.BASIC_AUTH:
            return Answer(answers.NOT_BASIC_AUTH)
        return found

    async def bearer_account(
        self, token: str, address: str, *, fresh: bool = True
    ) -> AccountInfo | Answer:
        """Bearer checks 1 to 4: blank, not ours or superseded, expired, not TOKEN_AUTH."""
        if not token:
            return await self.refused(address, TOKEN_MISSING)
        claims = await self.tokens.verify(token)
        if claims is None:
            return await self.refused(address, INVALID_TOKEN)
        account = None if fresh else self.directory.cached(claims.username)
        expired = claims.expires_at <= time.time()
        if account is None or account.token_id != claims.jti or expired:
            # Afresh: a refusal rests on the database's word (a token expired in the cache's
            # eyes may have been superseded since, which the contract answers first).
            account = await self.directory.account(claims.username)
        if account is None or account.token_id != claims.jti:
            return await self.refused(address, INVALID_TOKEN)
        if expired:
            return await self.refused(address, TOKEN_EXPIRED)
        if account.auth_mode != AuthMode.TOKEN_AUTH:
            return Answer(answers.NOT_BASIC_AUTH)
        note_account(account.username)
        return account

    async def key_account(self, username: str, api_key: str) -> AccountInfo | None:
        """The account if ``api_key`` is its key, read afresh. A None is a failed
        authentication: answer it through ``refused``. An unknown user name and a wrong
        key cost the same work."""
        account = await self.directory.account(username)
        stored_hash = account.api_key_hash if account is not None else NO_ACCOUNT
        if account is None or not key_matches(stored_hash, api_key):
            return None
        note_account(username)
        return account

    async def account_by_key(self, api_key: str) -> AccountInfo | None:
        """The account whose key this is (keys are unique across accounts)."""
        account = await self.directory.account_by_key(api_key)
        if account is not None:
            note_account(account.username)
        return account

    async def refused(self, address: str, body: answers.Body) -> Answer:
        """A refused authentication, counted against the address: ``body``, or HTTP 429
        once the address is over its budget."""
        retry_after = await self.limiter.hit_address(address)
        return rate_limited(retry_after) if retry_after else Answer(body)

    async def over_limit(self, account: AccountInfo, endpoint: str) -> Answer | None:
        """Count a request against the account's per-minute budget of ``endpoint``; the
        HTTP 429 answer when it is over."""
        retry_after = await self.limiter.hit_account(account.id, account.rate_limit, endpoint)
        return rate_limited(retry_after) if retry_after else None
