"""Bearer tokens of the compatible API family: HS512 JWTs made and checked with PyJWT.

A token names its account by user name (``sub``) and carries ``iat``, ``exp`` (one hour
later) and a unique ``jti``. Only the account's newest token is valid: its ``jti`` is the
account's ``token_id``, which a worker reads with the account (``compat.directory``), so
checking a token needs no database round trip of its own. Generating a token bumps the
configuration revision, so every worker re-reads the account before it trusts its cache
again (see ``compat.auth``).

The signing key is ``DIALBASE_TOKEN_SECRET``; when unset, one random secret is created on
first use and kept in the ``app_secrets`` table, so every worker of a deployment shares it.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialbase.accounts.models import AppSecret

ALGORITHM = "HS512"
LIFETIME_SECONDS = 3600
SECRET_NAME = "token_secret"
_REQUIRED = ["sub", "iat", "exp", "jti"]


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
        key = await self.key()
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
        session.add(AppSecret(name=SECRET_NAME, value=secrets.token_urlsafe(64)))
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
        value = await session.scalar(query)
    if value is None:  # pragma: no cover - the row was just written or read
        raise RuntimeError("the token secret could not be stored")
    return value
