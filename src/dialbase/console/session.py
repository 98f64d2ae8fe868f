"""Console sessions: server-side rows, a signed id in the cookie, CSRF tokens.

Signing in stores a ``console_sessions`` row (``console.models``) keyed by the SHA-256 of
a new random id; the cookie carries that id signed (itsdangerous, with a key derived from
the deployment's shared secret, ``compat.tokens.Tokens.key``). Every console request
looks the row up; a row unused for ``DIALBASE_CONSOLE_IDLE_MINUTES`` is deleted and the
browser must sign in again. ``last_seen_at`` is written at most once a minute per session
(its own short transaction), so the idle timeout is exact to a minute. Signing out
deletes the row: the old cookie names nothing from then on, on every worker.

Each session has a CSRF token, sent back by every form (``csrf_token``). The sign-in form,
before any session exists, uses a double-submit token: a signed cookie of its own and the
same value in the form. No web framework here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadSignature, Signer
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialbase.compat.tokens import Tokens
from dialbase.console.models import ConsoleSession
from dialbase.db import session_scope, utcnow
from dialbase.errors import DialbaseError

COOKIE = "dialbase_console"
SIGN_IN_COOKIE = "dialbase_console_sign_in"
TOUCH_EVERY = timedelta(minutes=1)
_SALT = "dialbase.console.session"
_SIGN_IN_SALT = "dialbase.console.sign-in"
_TOKEN_CHARS = 128  # longest token or cookie value read at all


class SignInNeeded(DialbaseError):
    """No valid session: the console sends the browser to the sign-in page."""

    status = 401


class Forbidden(DialbaseError):
    status = 403


CSRF_FAILED = (
    "This form was not sent from the page dialbase gave you, or that page is too old:"
    " reload the page and try again. Nothing was changed."
)


@dataclass(frozen=True, slots=True)
class SignedIn:
    account_id: int
    csrf_token: str
    key: str  # the row's id (the hash of the session id)


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def same_token(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode()[:128])


class SessionStore:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], tokens: Tokens, idle_minutes: int
    ) -> None:
        self._sessionmaker = sessionmaker
        self._tokens = tokens
        self.idle = timedelta(minutes=idle_minutes)
        self._signers: dict[str, Signer] = {}

    async def _signer(self, salt: str) -> Signer:
        if salt not in self._signers:
            key = hmac.new(await self._tokens.key(), b"dialbase console", "sha256").digest()
            self._signers[salt] = Signer(key, salt=salt)
        return self._signers[salt]

    async def _unsign(self, value: str | None, salt: str) -> str | None:
        if not value or len(value) > _TOKEN_CHARS:
            return None
        try:
            return (await self._signer(salt)).unsign(value).decode()
        except (BadSignature, UnicodeDecodeError):
            return None

    # The sign-in form's token --------------------------------------------------------

    async def sign_in_token(self) -> tuple[str, str]:
        """A new token for the sign-in form, and the cookie value that goes with it."""
        token = secrets.token_urlsafe(32)
        return token, (await self._signer(_SIGN_IN_SALT)).sign(token).decode()

    async def sign_in_token_matches(self, cookie: str | None, given: str | None) -> bool:
        expected = await self._unsign(cookie, _SIGN_IN_SALT)
        return expected is not None and same_token(expected, given)

    # Sessions ------------------------------------------------------------------------

    async def create(self, session: AsyncSession, account_id: int) -> str:
        """A new session of the account (flushed: the caller commits); its cookie value."""
        session_id = secrets.token_urlsafe(32)
        now = utcnow()
        session.add(
            ConsoleSession(
                id=_hash(session_id),
                account_id=account_id,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                last_seen_at=now,
            )
        )
        await session.flush()
        return (await self._signer(_SALT)).sign(session_id).decode()

    async def check(self, cookie: str | None) -> SignedIn:
        """The session the cookie names, if it is still open; ``SignInNeeded`` if not."""
        session_id = await self._unsign(cookie, _SALT)
        if session_id is None:
            raise SignInNeeded("Sign in to use the console.")
        key = _hash(session_id)
        async with session_scope(self._sessionmaker, read_only=True) as session:
            row = await session.scalar(select(ConsoleSession).where(ConsoleSession.id == key))
        now = utcnow()
        if row is None:
            raise SignInNeeded("Your session has ended. Sign in again.")
        if row.last_seen_at + self.idle <= now:
            await self._delete(key)
            minutes = int(self.idle.total_seconds() // 60)
            raise SignInNeeded(f"You were signed out after {minutes} minutes without activity.")
        if now - row.last_seen_at >= TOUCH_EVERY:
            await self._touch(key, now)
        return SignedIn(row.account_id, row.csrf_token, key)

    async def _touch(self, key: str, now: datetime) -> None:
        async with session_scope(self._sessionmaker) as session:
            await session.execute(
                update(ConsoleSession).where(ConsoleSession.id == key).values(last_seen_at=now)
            )

    async def _delete(self, key: str) -> None:
        async with session_scope(self._sessionmaker) as session:
            await end(session, key)


async def end(session: AsyncSession, key: str) -> None:
    """Sign a session out (flushes; the caller commits)."""
    await session.execute(delete(ConsoleSession).where(ConsoleSession.id == key))


async def end_expired(session: AsyncSession, idle: timedelta) -> None:
    """Delete every session idle for longer than ``idle`` (done at each sign-in)."""
    await session.execute(
        delete(ConsoleSession).where(ConsoleSession.last_seen_at <= utcnow() - idle)
    )
