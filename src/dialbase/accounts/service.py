"""Accounts: creation, settings, API key checks. No web framework here."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dialbase import phones
from dialbase.accounts.models import Account, AuthMode, ConfigRevision
from dialbase.campaigns.models import Campaign
from dialbase.db import utcnow
from dialbase.errors import Conflict, Invalid, NotFound
from dialbase.leads.models import Lead, LeadStatus

MAX_RATE_LIMIT = 1_000_000_000
MAX_DAILY_ATTEMPTS = 1000
# API keys are unique across accounts: the older add endpoint names an account by its key.
KEY_TAKEN = (
    "that API key is already used by another account: choose another one,"
    " or leave it out to have one generated"
)


def hash_api_key(api_key: str) -> str:
    """SHA-256 of the key. Keys are random 256-bit strings, so a fast hash is enough."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def key_matches(account_hash: str, api_key: str) -> bool:
    return hmac.compare_digest(account_hash, hash_api_key(api_key))


def new_api_key() -> str:
    return secrets.token_urlsafe(32)


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid(f"unknown time zone {name!r}: use an IANA name such as Asia/Kolkata") from exc
    return name


def check_auth_mode(mode: str) -> str:
    try:
        return AuthMode(mode.upper()).value
    except ValueError as exc:
        allowed = ", ".join(m.value for m in AuthMode)
        raise Invalid(f"unknown auth mode {mode!r}: use one of {allowed}") from exc


def check_rate_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_RATE_LIMIT:
        raise Invalid(f"rate limit must be between 1 and {MAX_RATE_LIMIT} requests per minute")
    return limit


def check_default_country(code: str) -> str | None:
    """An ISO 3166 code, upper-cased; ``""`` (or blanks) means none."""
    if not code.strip():
        return None
    try:
        return phones.check_country(code)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc


def check_max_daily_attempts(count: int) -> int:
    if not 0 <= count <= MAX_DAILY_ATTEMPTS:
        raise Invalid(f"max daily attempts must be between 0 (no cap) and {MAX_DAILY_ATTEMPTS}")
    return count


MIN_API_KEY_CHARS = 8


def check_api_key(api_key: str) -> str:
    """A key must travel unchanged in an HTTP header (``apiKey``, Basic Auth) as in a JSON
    body: at least 8 characters, each printable ASCII other than a space (0x21 to 0x7E)."""
    if len(api_key) < MIN_API_KEY_CHARS:
        raise Invalid(f"an API key needs at least {MIN_API_KEY_CHARS} characters")
    if not all("\x21" <= char <= "\x7e" for char in api_key):
        raise Invalid(
            "an API key may hold only printable ASCII characters (letters, digits,"
            " punctuation), no spaces"
        )
    return api_key


async def bump_revision(session: AsyncSession) -> None:
    """Tell every worker's cache that accounts or campaigns changed.

    The revision becomes a new random value rather than the next number: a worker's cache
    is valid only while the revision is the very one it was read at, and a random value
    never comes back, not even in a database recreated or restored from a backup (which
    a counter would reach again with other contents).
    """
    new_value = secrets.randbelow(2**31 - 2) + 1
    await session.execute(
        update(ConfigRevision)
        .where(ConfigRevision.id == 1)
        .values(value=case((ConfigRevision.value == new_value, new_value + 1), else_=new_value))
    )


async def create_account(
    session: AsyncSession,
    username: str,
    *,
    api_key: str | None = None,
    auth_mode: str = AuthMode.BASIC_AUTH.value,
    timezone: str = "UTC",
    rate_limit: int = 100,
    default_country: str | None = None,
    max_daily_attempts: int = 0,
) -> tuple[Account, str]:
    """Create an account; returns it with its API key in clear (shown once, never stored).

    ``default_country`` (ISO 3166, ``None`` or ``""``: none) is the country of numbers
    sent without a prefix; ``max_daily_attempts`` caps how often a number is handed out in
    any 24 hours (0: no cap).
    """
    username = username.strip()
    if not username:
        raise Invalid("a user name must not be blank")
    key = check_api_key(api_key) if api_key is not None else new_api_key()
    if await session.scalar(select(Account.id).where(Account.username == username)) is not None:
        raise Conflict(_name_taken(username))
    key_hash = await _free_key_hash(session, key)
    account = Account(
        username=username,
        api_key_hash=key_hash,
        auth_mode=check_auth_mode(auth_mode),
        timezone=check_timezone(timezone),
        rate_limit=check_rate_limit(rate_limit),
        default_country=check_default_country(default_country or ""),
        max_daily_attempts=check_max_daily_attempts(max_daily_attempts),
    )
    session.add(account)
    await _flush(session, _name_taken(username))
    await bump_revision(session)
    return account, key


def _name_taken(username: str) -> str:
    return f"an account named {username!r} already exists"


async def _free_key_hash(session: AsyncSession, api_key: str, account_id: int | None = None) -> str:
    """The key's hash, if no account but ``account_id`` has that key; else ``Conflict``."""
    key_hash = hash_api_key(api_key)
    holder = await session.scalar(select(Account.id).where(Account.api_key_hash == key_hash))
    if holder is not None and holder != account_id:
        raise Conflict(KEY_TAKEN)
    return key_hash


async def _flush(session: AsyncSession, name_taken: str) -> None:
    """Flush; a unique index refusing the write (another writer got there between the
    check and the write) is a ``Conflict`` naming what was taken."""
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(KEY_TAKEN if "api_key_hash" in str(exc.orig) else name_taken) from exc


async def get_account(session: AsyncSession, username: str) -> Account:
    account = await session.scalar(select(Account).where(Account.username == username.strip()))
    if account is None:
        raise NotFound(f"no account named {username!r}")
    return account


async def update_account(
    session: AsyncSession,
    username: str,
    *,
    auth_mode: str | None = None,
    timezone: str | None = None,
    rate_limit: int | None = None,
    api_key: str | None = None,
    default_country: str | None = None,
    max_daily_attempts: int | None = None,
) -> Account:
    """Change the settings given (``None``: unchanged; ``default_country=""`` clears it)."""
    account = await get_account(session, username)
    if auth_mode is not None:
        account.auth_mode = check_auth_mode(auth_mode)
    if timezone is not None:
        account.timezone = check_timezone(timezone)
    if rate_limit is not None:
        account.rate_limit = check_rate_limit(rate_limit)
    if api_key is not None:
        account.api_key_hash = await _free_key_hash(session, check_api_key(api_key), account.id)
    if default_country is not None:
        account.default_country = check_default_country(default_country)
    if max_daily_attempts is not None:
        account.max_daily_attempts = check_max_daily_attempts(max_daily_attempts)
        await _recheck_held_leads(session, account.id)
    await _flush(session, _name_taken(account.username))
    await bump_revision(session)
    return account


async def _recheck_held_leads(session: AsyncSession, account_id: int) -> None:
    """Leads the attempt cap held back are due now: the next lease checks them against
    the new cap (a raised or lifted cap frees them at once, a lower one holds them again)."""
    campaigns = select(Campaign.id).where(Campaign.account_id == account_id)
    await session.execute(
        update(Lead)
        .where(Lead.campaign_id.in_(campaigns), Lead.status == LeadStatus.HELD.value)
        .values(due_at=utcnow())
    )


async def rotate_api_key(
    session: AsyncSession, username: str, *, api_key: str | None = None
) -> tuple[Account, str]:
    """Replace an account's key; returns it with the new key in clear (shown once).

    The revision bump makes every worker's cache re-read the account, so the old key
    stops working at once everywhere (``compat/directory.py``). A key another account
    has is refused (``Conflict``): keys are unique across accounts.
    """
    account = await get_account(session, username)
    key = check_api_key(api_key) if api_key is not None else new_api_key()
    account.api_key_hash = await _free_key_hash(session, key, account.id)
    await _flush(session, _name_taken(account.username))
    await bump_revision(session)
    return account, key


async def list_accounts(session: AsyncSession) -> list[Account]:
    return list(await session.scalars(select(Account).order_by(Account.username)))


async def authenticate(session: AsyncSession, username: str, api_key: str) -> Account | None:
    account = await session.scalar(select(Account).where(Account.username == username))
    if account is None or not key_matches(account.api_key_hash, api_key):
        return None
    return account


def account_view(account: Account) -> dict[str, object]:
    """An account as ``account list`` shows it (one table row)."""
    return {
        "username": account.username,
        "authMode": account.auth_mode,
        "timezone": account.timezone,
        "rateLimit": account.rate_limit,
        "createdAt": account.created_at.isoformat(),
    }


def account_detail(account: Account) -> dict[str, object]:
    """An account with its dialing rules, as ``account show`` (and create, update) show it."""
    view = account_view(account)
    created = view.pop("createdAt")
    return {
        **view,
        "defaultCountry": account.default_country,
        "maxDailyAttempts": account.max_daily_attempts,
        "createdAt": created,
    }
