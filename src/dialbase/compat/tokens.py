"""Bearer tokens of the compatible API family: HS512 JWTs made and checked with PyJWT,
and Generate Token (``POST /ca_apis/CAToken/generateToken``) without its HTTP part.

A token names its account by user name (``sub``) and carries ``iat``, ``exp`` (one hour
later) and a unique ``jti``. Only the account's newest token is valid: its ``jti`` is the
account's ``token_id``, which a worker reads with the account (``compat.directory``), so
checking a token needs no database round trip of its own. Generating a token bumps the
configuration revision, so every worker re-reads the account before it trusts its cache
again (see ``compat.auth``).

The signing key is ``DIALBASE_TOKEN_SECRET``; when unset, one random secret is created on
first use and kept in the ``app_secrets`` table, so every worker of a deployment shares it.

Generate Token's one transaction (``GenerateToken._issue``), in order: lock the account's
row (PostgreSQL ``SELECT ... FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE`` already holds the
file's write lock), check it is still the account that was authenticated, forget its
tokens older than an hour, count the rest (at most ``TOKENS_PER_HOUR``), insert the new
token's row, make it the account's ``token_id``, bump the configuration revision, commit
(then this worker drops its cache at once; the others do on their next revision check).
The token is answered only after the commit returned; a failure anywhere rolls it all back
(the previous token stays the valid one). Two requests of one account never count the
same rows: the lock orders them, across workers and hosts.
"""

from __future__ import annotations

import math
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialbase.accounts.models import Account, ApiToken, AppSecret, AuthMode, ConfigRevision
from dialbase.accounts.service import bump_revision
from dialbase.compat import answers, fields
from dialbase.compat.answers import Answer, false_body
from dialbase.compat.directory import AccountInfo
from dialbase.db import session_scope, utcnow

if TYPE_CHECKING:  # compat.auth imports this module
    from dialbase.compat.auth import Credentials, FamilyAuth

ALGORITHM = "HS512"
LIFETIME_SECONDS = 3600
SECRET_NAME = "token_secret"
_REQUIRED = ["sub", "iat", "exp", "jti"]
# Verified tokens are remembered by their text: a JWT's signature check and parsing cost
# more than the rest of a bearer request's authentication. Only tokens whose signature
# is ours get in (nobody else can fill it); the whole memo is dropped when full.
MEMO_SIZE = 4096
# Generate Token: at most this many tokens per account in any ``TOKEN_WINDOW``.
TOKENS_PER_HOUR = 10
TOKEN_WINDOW = timedelta(hours=1)
ENDPOINT = "generateToken"  # the name of its per-minute budget (``FamilyAuth.over_limit``)
USERNAME_NULL = false_body("UserName is null")
INVALID_LOGIN = false_body("Invalid userName or apiKey")
LIMIT_REACHED = (
    "Token limit reached: at most {limit} tokens an hour; the next can be generated at {at} UTC."
)


@dataclass(frozen=True, slots=True)
class Claims:
    """What a token says, once its signature is known to be ours."""

    username: str
    jti: str
    expires_at: float  # seconds since the epoch


class Tokens:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], secret: str | None = None
    ) -> None:
        self._sessionmaker = sessionmaker
        self._key = secret.encode() if secret else None
        self._verified: dict[str, Claims] = {}

    async def key(self) -> bytes:
        """The signing key, read (or created) once per process."""
        if self._key is None:
            self._key = (await _shared_secret(self._sessionmaker)).encode()
        return self._key

    async def issue(self, username: str, now: float | None = None) -> tuple[str, str]:
        """A new token for ``username`` and its ``jti``; making it the account's current
        token is the caller's part."""
        issued = int(time.time() if now is None else now)
        jti = uuid.uuid4().hex
        claims = {"sub": username, "iat": issued, "exp": issued + LIFETIME_SECONDS, "jti": jti}
        return jwt.encode(claims, await self.key(), algorithm=ALGORITHM), jti

    async def verify(self, token: str) -> Claims | None:
        """The claims of a well-formed token signed with our key, expired or not (the
        caller checks supersession before expiry, as the contract orders them); None for
        anything else."""
        known = self._verified.get(token)
        if known is not None:
            return known
        claims = _decode(token, await self.key())
        if claims is not None:
            if len(self._verified) >= MEMO_SIZE:
                self._verified.clear()
            self._verified[token] = claims
        return claims


def _decode(token: str, key: bytes) -> Claims | None:
    """The claims of ``token`` if it is a well-formed HS512 JWT signed with ``key``."""
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            options={"verify_exp": False, "verify_iat": False, "require": _REQUIRED},
        )
    except jwt.InvalidTokenError:
        return None
    username, jti, expires = payload["sub"], payload["jti"], payload["exp"]
    if not (isinstance(username, str) and isinstance(jti, str)):
        return None
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        return None
    return Claims(username, jti, float(expires))


async def _shared_secret(sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    """The deployment's secret: the stored one, or a new one stored by the first worker
    to get there (a concurrent creator loses the insert and reads the winner's)."""
    query = select(AppSecret.value).where(AppSecret.name == SECRET_NAME)
    async with sessionmaker() as session:
        stored = await session.scalar(query)
    if stored is not None:
        return stored
    # Read again and write under the write lock (SQLite: a read transaction that then
    # writes fails at once, not after the busy timeout, when another connection writes).
    try:
        async with session_scope(sessionmaker) as session:
            value = await session.scalar(query)
            if value is None:
                value = secrets.token_urlsafe(64)
                session.add(AppSecret(name=SECRET_NAME, value=value))
    except IntegrityError:  # PostgreSQL: another worker's insert won; read it
        async with sessionmaker() as session:
            value = await session.scalar(query)
    if value is None:  # pragma: no cover - the row was just written or read
        raise RuntimeError("the token secret could not be stored")
    return value


class GenerateToken:
    """Generate Token's checks in the contract's order, then the one transaction."""

    def __init__(self, auth: FamilyAuth, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.auth = auth
        self.tokens = auth.tokens
        self.sessionmaker = sessionmaker

    async def generate(
        self, values: dict[str, Any], credentials: Credentials, address: str
    ) -> Answer:
        """``values``: the body's keys lower-cased (``auth.lower_keys``)."""
        key: Any = credentials.api_key if credentials.api_key is not None else values.get("apikey")
        if key is None:  # check 1
            return await self.auth.refused(address, answers.API_KEY_MISSING)
        if fields.is_blank(values.get("username")):  # check 2
            return await self.auth.refused(address, USERNAME_NULL)
        username = fields.as_text(values["username"]) or ""
        account = await self.auth.key_account(username, fields.as_text(key) or "")
        if account is None:  # check 3
            return await self.auth.refused(address, INVALID_LOGIN)
        if account.auth_mode != AuthMode.TOKEN_AUTH:  # check 4
            return Answer(answers.NOT_BASIC_AUTH)
        limited = await self.auth.over_limit(account, ENDPOINT)
        if limited is not None:
            return limited
        await self.tokens.key()  # read or create the secret before the write lock is held
        return await self._issue(account)

    async def _issue(self, account: AccountInfo) -> Answer:
        """Check 5 and the token, in one transaction (see the module's docstring)."""
        async with session_scope(self.sessionmaker) as session:
            locked = await _lock_account(session, account.id)
            if locked is None or locked.api_key_hash != account.api_key_hash:
                return Answer(INVALID_LOGIN)  # deleted or given a new key meanwhile
            if locked.auth_mode != AuthMode.TOKEN_AUTH:
                return Answer(answers.NOT_BASIC_AUTH)
            now = utcnow()
            recent = await _recent_tokens(session, account.id, now)
            if len(recent) >= TOKENS_PER_HOUR:  # check 5
                return _limit_reached(recent[len(recent) - TOKENS_PER_HOUR] + TOKEN_WINDOW, now)
            token, jti = await self.tokens.issue(locked.username, now.timestamp())
            session.add(ApiToken(account_id=account.id, jti=jti, issued_at=now))
            await session.execute(
                update(Account).where(Account.id == account.id).values(token_id=jti)
            )
            await bump_revision(session)
            revision = await session.scalar(select(ConfigRevision.value))
        # This worker's cache holds the account with its previous token: drop it now.
        self.auth.directory.saw_revision(int(revision or 0))
        return Answer({"token": token, "message": ""})


@dataclass(frozen=True, slots=True)
class _Locked:
    username: str
    api_key_hash: str
    auth_mode: str


async def _lock_account(session: AsyncSession, account_id: int) -> _Locked | None:
    row = (
        await session.execute(
            select(Account.username, Account.api_key_hash, Account.auth_mode)
            .where(Account.id == account_id)
            .with_for_update()
        )
    ).first()
    return None if row is None else _Locked(row.username, row.api_key_hash, row.auth_mode)


async def _recent_tokens(session: AsyncSession, account_id: int, now: datetime) -> list[datetime]:
    """When the account's tokens of the last hour were issued, oldest first; older rows
    are deleted (nothing counts them any more)."""
    since = now - TOKEN_WINDOW
    await session.execute(
        delete(ApiToken).where(ApiToken.account_id == account_id, ApiToken.issued_at <= since)
    )
    issued = await session.scalars(
        select(ApiToken.issued_at)
        .where(ApiToken.account_id == account_id, ApiToken.issued_at > since)
        .order_by(ApiToken.issued_at)
    )
    return list(issued)


def _limit_reached(next_at: datetime, now: datetime) -> Answer:
    """HTTP 429 saying when the next token may be generated (to the whole second, rounded
    up: a request at that second succeeds), and ``Retry-After`` until then."""
    if next_at.microsecond:
        next_at = next_at.replace(microsecond=0) + timedelta(seconds=1)
    wait = max(1, math.ceil((next_at - now).total_seconds()))
    at = next_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    body = false_body(LIMIT_REACHED.format(limit=TOKENS_PER_HOUR, at=at))
    return Answer(body, 429, {"Retry-After": str(wait)})
