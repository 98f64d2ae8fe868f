"""Idempotent writes: the ``Idempotency-Key`` header (docs/api.md, "Idempotent requests").

One ASGI middleware (in ``app.MIDDLEWARE``) sees every request. Without the header, or on a
request that is not a write it covers, it hands the request on after one scan of the
headers. Covered writes (``family_of``): every POST/PUT/PATCH/DELETE under ``/v1/``, every
non-GET request under ``/ca_apis/`` (AddCampaignData and the family's other writes), the
bulk endpoint (POST) and the older add endpoint (any method: its GET adds a lead too).

For a covered request with a key:

1. The key is checked (1 to 255 printable ASCII characters, space included): else 400.
2. The body is read (spooled to a temporary file past ``SPOOL_BYTES``; a body past
   ``MAX_BODY_BYTES``, larger than any endpoint takes, is handed on unkeyed, for the
   endpoint to refuse) and two hashes are made: the *scope*, sha256 of the caller's
   credential material (the ``Authorization`` and ``apiKey`` headers, plus the
   ``userName``/``apiKey``/``api_key`` values the compatible endpoints read from the body,
   query string or path), and the *fingerprint*, sha256 of method, path, query string and
   body (a ``multipart/form-data`` body without its boundary, which clients pick at random).
3. The key is claimed: a row (scope, key) is inserted in ``idempotency_keys`` before the
   request runs; its primary key lets exactly one request win, on any worker. A request
   that finds the row:
   - with another fingerprint: refused, 422;
   - with a kept answer: that answer is replayed (status, body and headers, plus
     ``Idempotent-Replayed: true``), nothing runs;
   - in progress: waits, polling the row (``POLL_*``), up to ``WAIT_SECONDS``, then replays;
     still in progress then: 409 with ``Retry-After`` (nothing ran);
   - in progress with its lease (``LEASE_SECONDS``) lapsed: the claimant is presumed dead,
     the claim is taken over (a conditional update, so one request wins) and runs again.
   A row older than ``KEEP_SECONDS`` (24 h) counts as absent; such rows are pruned.
4. The request runs; its answer is buffered. A final answer (anything but 5xx and 429) is
   stored in the row, then sent; any other answer releases the claim (the row is deleted)
   so that a retry runs again.

Limits, written down: a process killed after the endpoint committed and before the answer
was stored leaves the claim in progress; a retry waits (409 after ``WAIT_SECONDS``) until
the lease lapses, then runs the request again. For AddCampaignData with ``checkDuplicate``
the campaign's duplicate guard still refuses the number; without it the lead can be stored
twice. The same happens if storing the answer fails (the database went away after the
endpoint's commit): the answer is still sent (it is true), the claim is left to lapse.
A request running longer than the lease can be taken over by a retry: the lease is far
longer than the database timeouts that bound a request.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import parse_qsl

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dialbase import responses
from dialbase.compat import legacy, legacy_routes
from dialbase.compat.answers import Answer, false_body
from dialbase.compat.auth import lower_keys
from dialbase.db import utcnow
from dialbase.idempotency_models import IdempotencyKey

log = logging.getLogger("dialbase.idempotency")

HEADER = b"idempotency-key"
REPLAYED = (b"idempotent-replayed", b"true")
MAX_KEY_CHARS = 255
SPOOL_BYTES = 4 * 1024 * 1024  # bodies up to this stay in memory
MAX_BODY_BYTES = 257 * 1024 * 1024  # the largest file upload (256 MiB) and its form
KEEP_SECONDS = 24 * 3600
LEASE_SECONDS = 60.0
WAIT_SECONDS = 10.0
POLL_FIRST = 0.01
POLL_MAX = 0.1
PRUNE_EVERY = 60.0
CHUNK = 64 * 1024

BULK_PATH = "/cloudAgentRestAPI/index.php/AddCampaignBulkDataV4/addBulkData/format/json"
V1_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CREDENTIAL_HEADERS = (b"authorization", b"apikey")
CREDENTIAL_FIELDS = ("username", "apikey")  # after lower_keys (api_key is apikey)
# Not stored, not replayed: the server sets them per response, or they are hop-by-hop.
DROPPED_HEADERS = frozenset(
    {b"content-length", b"date", b"server", b"connection", b"transfer-encoding", b"set-cookie"}
)

BAD_KEY = (
    "The Idempotency-Key header must be 1 to 255 printable ASCII characters"
    " (space to tilde), given once."
)
MISMATCH = (
    "This Idempotency-Key was already used with a different request (method, path, query"
    " string or body); use a new key for a new request."
)
IN_PROGRESS = (
    "A request with this Idempotency-Key is still in progress; retry after a second to get"
    " its answer."
)


# Which endpoints --------------------------------------------------------------------

TOKEN_PATH = "/ca_apis/CAToken/generateToken"


def family_of(method: str, path: str) -> str | None:
    """The API family whose error shape a covered write answers in; None: not covered."""
    if path.startswith("/v1/"):
        if method == "PUT" and path.endswith("/webhooks"):
            return None  # a replay would mean keeping a webhook's secret in a second table
        return "v1" if method in V1_WRITES else None
    if path == TOKEN_PATH:
        return None  # a replay would mean keeping a live bearer token in the database
    if path.startswith(responses.COMPAT_PREFIX):
        return None if method in ("GET", "HEAD", "OPTIONS") else "compat"
    if path == BULK_PATH:
        return "bulk" if method == "POST" else None
    if legacy_routes.matches(path):
        return "legacy"
    return None


def valid_key(raw: bytes) -> bool:
    return 1 <= len(raw) <= MAX_KEY_CHARS and all(0x20 <= byte <= 0x7E for byte in raw)


# Answers made here ------------------------------------------------------------------


@dataclass(slots=True)
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    async def send(self, send: Send) -> None:
        headers = [*self.headers, (b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def refusal(request: Request, status: int, message: str, headers: dict[str, str]) -> Reply:
    """``message`` with ``status`` in the shape of the request's family."""
    extra = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    if request.family == "v1":
        response = responses.problem(status, message, headers)
        kept = [(n, v) for n, v in response.raw_headers if n != b"content-length"]
        return Reply(status, kept, bytes(response.body))
    if request.family == "legacy":
        body, content_type = legacy.render(Answer(false_body(message), status), request.json)
        return Reply(status, [(b"content-type", content_type), *extra], body)
    shape: dict[str, Any] = (
        {"status": "error", "message": message} if request.family == "bulk" else false_body(message)
    )
    return Reply(status, [(b"content-type", b"application/json"), *extra], orjson.dumps(shape))


def failure(request: Request, exc: BaseException) -> Reply:
    """A failure of the idempotency store (a database outage: 503) as the family's answer."""
    error = responses.error_of(exc)
    return refusal(request, error.status, error.message, responses.headers_of(error))


# The request ------------------------------------------------------------------------


@dataclass(slots=True)
class Request:
    family: str
    key: str
    body: Any  # the spooled body (a SpooledTemporaryFile)
    size: int
    complete: bool = True  # the whole body was read (else: past MAX_BODY_BYTES)
    scope_hash: str = ""
    fingerprint: str = ""
    json: bool = False  # the older endpoint: the answer's format

    def receive(self, receive: Receive) -> Receive:
        """The buffered body for the application, then the connection's own messages."""
        self.body.seek(0)
        done = False

        async def replay() -> Message:
            nonlocal done
            if done:
                return await receive()
            chunk = self.body.read(CHUNK)
            done = self.body.tell() >= self.size
            more = not done or not self.complete
            return {"type": "http.request", "body": chunk, "more_body": more}

        return replay

    def small_body(self) -> bytes | None:
        if self.size > SPOOL_BYTES:
            return None
        self.body.seek(0)
        data: bytes = self.body.read()
        return data


async def read_body(receive: Receive, request: Request) -> bool:
    """Spool the request body, up to the first chunk past ``MAX_BODY_BYTES``
    (``request.complete`` says whether it was all read); False if the client went away."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        chunk = message.get("body", b"")
        if chunk:
            request.body.write(chunk)
            request.size += len(chunk)
        if not message.get("more_body", False):
            return True
        if request.size > MAX_BODY_BYTES:
            request.complete = False
            return True


def declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def hashes(scope: Scope, request: Request) -> None:
    """Set the request's scope hash, fingerprint and (older endpoint) answer format."""
    query: bytes = scope.get("query_string", b"")
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    fingerprint = hashlib.sha256()
    for part in (scope["method"].encode(), raw_path, query):
        fingerprint.update(len(part).to_bytes(8, "big") + part)
    request.body.seek(0)
    boundary = multipart_boundary(scope)
    if boundary is None:
        while chunk := request.body.read(CHUNK):
            fingerprint.update(chunk)
    else:
        # A client encoding the same form again picks a new random boundary: the body
        # is compared without it.
        keep = len(boundary) - 1
        carry = b""
        while chunk := request.body.read(CHUNK):
            text = (carry + chunk).replace(boundary, b"\x00")
            carry = text[max(0, len(text) - keep) :] if keep else b""
            fingerprint.update(text[: len(text) - len(carry)])
        fingerprint.update(carry)
    request.fingerprint = fingerprint.hexdigest()

    material: list[bytes] = []
    for wanted in CREDENTIAL_HEADERS:
        value = next((v for name, v in scope["headers"] if name == wanted), None)
        material.append(b"-" if value is None else b"+" + value)
    if request.family != "v1":
        values = _body_credentials(scope, request, query)
        for name in CREDENTIAL_FIELDS:
            value = values.get(name)
            material.append(b"-" if value is None else b"+" + str(value).encode())
    caller = hashlib.sha256()
    for part in material:
        caller.update(len(part).to_bytes(8, "big") + part)
    request.scope_hash = caller.hexdigest()


def multipart_boundary(scope: Scope) -> bytes | None:
    """``--`` and the boundary of a ``multipart/form-data`` body; None for other bodies."""
    content_type = next((v for n, v in scope["headers"] if n == b"content-type"), b"")
    kind, _, params = content_type.partition(b";")
    if kind.strip().lower() != b"multipart/form-data":
        return None
    for param in params.split(b";"):
        name, _, value = param.strip().partition(b"=")
        if name.strip().lower() == b"boundary" and value.strip(b'" '):
            return b"--" + value.strip(b'" ')
    return None


def _body_credentials(scope: Scope, request: Request, query: bytes) -> dict[str, Any]:
    """The user name and API key the endpoint would read from the request itself."""
    body = request.small_body()
    if request.family == "legacy":
        return _legacy_credentials(scope, request, query, body)
    values: dict[str, Any] = {}
    if query:  # some of the family's endpoints also read the query string
        try:
            values = lower_keys(dict(reversed(_pairs(query))))  # the first of a name
        except (UnicodeDecodeError, ValueError):
            values = {}
    if body:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = None
        if isinstance(payload, dict):
            values.update(lower_keys(payload))  # the body's win
    return values


def _legacy_credentials(
    scope: Scope, request: Request, query: bytes, body: bytes | None
) -> dict[str, Any]:
    try:
        raw = scope.get("raw_path")
        path = raw.decode("latin-1") if raw else scope["path"]
        if not path.startswith(legacy_routes.PREFIX):
            path = scope["path"]
        target = legacy.target(path[len(legacy_routes.PREFIX) :])
        sources = [target.segments, _pairs(query)]
        content_type = next((v for n, v in scope["headers"] if n == b"content-type"), b"")
        if body and content_type.partition(b";")[0].strip().lower() == legacy_routes.FORM.encode():
            sources.insert(1, _pairs(body))
        # Multipart bodies are not parsed here: their fields are in the fingerprint only.
        values = legacy.parameters(*sources)
    except (legacy.NotThisEndpoint, UnicodeDecodeError, ValueError):
        return {}
    request.json = legacy.wants_json(values.items(), target.extension)
    return lower_keys(values)


def _pairs(raw: bytes) -> list[tuple[str, str]]:
    return parse_qsl(raw.decode(), keep_blank_values=True)


# The store --------------------------------------------------------------------------

_TABLE = cast(sa.Table, IdempotencyKey.__table__)


@dataclass(frozen=True, slots=True)
class Claimed:
    token: str


@dataclass(frozen=True, slots=True)
class Kept:
    reply: Reply


class Mismatch:
    pass


class Busy:
    pass


Outcome = Claimed | Kept | Mismatch | Busy


def _judge(row: Any, fingerprint: str, now: datetime) -> Outcome | None:
    """What an existing row means for a request; None: it may be taken over (expired, or
    in progress with its lease lapsed)."""
    expired = row.created_at <= now - timedelta(seconds=KEEP_SECONDS)
    if expired:
        return None
    if row.fingerprint != fingerprint:
        return Mismatch()
    if row.status_code is None:
        return None if row.claimed_until <= now else Busy()
    headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in row.headers or []]
    return Kept(Reply(row.status_code, headers, row.body or b""))


class Store:
    """The rows of ``idempotency_keys``; every method is one short transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._pruned_at = 0.0

    async def claim(self, scope_hash: str, key: str, fingerprint: str, token: str) -> Outcome:
        """Claim the key, or what the existing row says (``Busy``: in progress, lease held)."""
        now = utcnow()
        values = {
            "scope": scope_hash,
            "idem_key": key,
            "fingerprint": fingerprint,
            "claim": token,
            "claimed_until": now + timedelta(seconds=LEASE_SECONDS),
            "created_at": now,
        }
        where = (_TABLE.c.scope == scope_hash) & (_TABLE.c.idem_key == key)
        async with self.engine.begin() as conn:
            inserted = await conn.execute(
                self._insert(_TABLE).values(**values).on_conflict_do_nothing()
            )
            if inserted.rowcount == 1:
                return Claimed(token)
            row = (await conn.execute(sa.select(_TABLE).where(where))).first()
            if row is None:  # released meanwhile: try again
                return Busy()
            seen = _judge(row, fingerprint, now)
            if seen is not None:
                return seen
            # Expired, or its claimant presumed dead: take it over (one request wins).
            taken = await conn.execute(
                _TABLE.update().where(where & (_TABLE.c.claim == row.claim)).values(**values)
            )
            return Claimed(token) if taken.rowcount == 1 else Busy()

    async def peek(self, scope_hash: str, key: str, fingerprint: str) -> Outcome | None:
        """What the row says, read only (no write lock taken); None: claim it."""
        where = (_TABLE.c.scope == scope_hash) & (_TABLE.c.idem_key == key)
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(_TABLE).where(where))).first()
        return None if row is None else _judge(row, fingerprint, utcnow())

    async def keep(self, scope_hash: str, key: str, token: str, reply: Reply) -> None:
        headers = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in reply.headers]
        async with self.engine.begin() as conn:
            await conn.execute(
                _TABLE.update()
                .where(
                    (_TABLE.c.scope == scope_hash)
                    & (_TABLE.c.idem_key == key)
                    & (_TABLE.c.claim == token)
                )
                .values(status_code=reply.status, headers=headers, body=reply.body)
            )

    async def release(self, scope_hash: str, key: str, token: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                _TABLE.delete().where(
                    (_TABLE.c.scope == scope_hash)
                    & (_TABLE.c.idem_key == key)
                    & (_TABLE.c.claim == token)
                    & _TABLE.c.status_code.is_(None)
                )
            )

    async def prune_if_due(self) -> None:
        """Delete rows older than ``KEEP_SECONDS``, at most once a ``PRUNE_EVERY`` here."""
        if time.monotonic() - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = time.monotonic()
        await self.prune()

    async def prune(self) -> int:
        cutoff = utcnow() - timedelta(seconds=KEEP_SECONDS)
        async with self.engine.begin() as conn:
            result = await conn.execute(_TABLE.delete().where(_TABLE.c.created_at <= cutoff))
            return int(result.rowcount or 0)


# The middleware ---------------------------------------------------------------------


class Idempotency:
    """The ASGI middleware. ``engine()`` gives the running application's database engine."""

    def __init__(self, app: ASGIApp, engine: Callable[[], AsyncEngine]) -> None:
        self.app = app
        self._engine = engine
        self._store: Store | None = None

    def store(self) -> Store:
        engine = self._engine()
        if self._store is None or self._store.engine is not engine:
            self._store = Store(engine)
        return self._store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The hot path: one scan of the headers, then the application.
        if scope["type"] == "http":
            for name, _ in scope["headers"]:
                if name == HEADER:
                    await self._keyed(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _keyed(self, scope: Scope, receive: Receive, send: Send) -> None:
        keys = [value for name, value in scope["headers"] if name == HEADER]
        family = family_of(scope["method"], scope["path"])
        if family is None:
            await self.app(scope, receive, send)
            return
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as body:
            request = Request(family, keys[0].decode("latin-1"), body, 0)
            await self._idempotent(scope, receive, send, request, keys)

    async def _idempotent(
        self, scope: Scope, receive: Receive, send: Send, request: Request, keys: list[bytes]
    ) -> None:
        declared = declared_length(scope)
        if declared is not None and declared > MAX_BODY_BYTES:
            await self.app(scope, receive, send)  # unkeyed: the endpoint refuses its size
            return
        if not await read_body(receive, request):
            return  # the client went away: nothing to answer, nothing done
        if not request.complete:  # the same, found while reading
            await self.app(scope, request.receive(receive), send)
            return
        hashes(scope, request)
        if len(keys) != 1 or not valid_key(keys[0]):
            await refusal(request, 400, BAD_KEY, {}).send(send)
            return
        try:
            store = self.store()
            outcome = await self._claim(store, request)
        except Exception as exc:
            await failure(request, exc).send(send)
            return
        if isinstance(outcome, Kept):
            outcome.reply.headers.append(REPLAYED)
            await outcome.reply.send(send)
        elif isinstance(outcome, Mismatch):
            await refusal(request, 422, MISMATCH, {}).send(send)
        elif isinstance(outcome, Busy):
            retry = {"Retry-After": "1"}
            await refusal(request, 409, IN_PROGRESS, retry).send(send)
        else:
            await self._run(scope, receive, send, request, store, outcome.token)

    async def _claim(self, store: Store, request: Request) -> Outcome:
        token = secrets.token_hex(16)
        deadline = time.monotonic() + WAIT_SECONDS
        pause = POLL_FIRST
        claim = functools.partial(
            store.claim, request.scope_hash, request.key, request.fingerprint, token
        )
        outcome = await claim()
        # Waiting for another request's claim: polled read only, claimed again only when
        # the row is gone (a released claim) or may be taken over.
        while isinstance(outcome, Busy) and time.monotonic() < deadline:
            await asyncio.sleep(pause)
            pause = min(pause * 2, POLL_MAX)
            seen = await store.peek(request.scope_hash, request.key, request.fingerprint)
            outcome = seen if seen is not None else await claim()
        return outcome

    async def _run(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request: Request,
        store: Store,
        token: str,
    ) -> None:
        started: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, request.receive(receive), capture)
        except BaseException:
            await self._release(store, request, token)
            if started is not None:  # the application answered, then raised
                await _reply_of(started, chunks).send(send)
            raise
        if started is None:
            await self._release(store, request, token)
            return
        reply = _reply_of(started, chunks)
        if reply.status >= 500 or reply.status == 429:
            await self._release(store, request, token)
        else:
            try:
                await store.keep(request.scope_hash, request.key, token, reply)
            except Exception as exc:  # the answer is true: send it, let the claim lapse
                log.warning("could not keep the answer for an idempotency key: %r", exc)
        await reply.send(send)
        try:
            await store.prune_if_due()
        except Exception as exc:
            log.warning("could not prune idempotency keys: %r", exc)

    async def _release(self, store: Store, request: Request, token: str) -> None:
        try:
            await store.release(request.scope_hash, request.key, token)
        except Exception as exc:  # the claim lapses after its lease
            log.warning("could not release an idempotency key: %r", exc)


def _reply_of(started: Message, chunks: list[bytes]) -> Reply:
    headers = [
        (bytes(name).lower(), bytes(value))
        for name, value in started.get("headers", [])
        if bytes(name).lower() not in DROPPED_HEADERS
    ]
    return Reply(int(started["status"]), headers, b"".join(chunks))


def middleware(app: ASGIApp) -> ASGIApp:
    """For ``app.MIDDLEWARE``: ``app`` is ``Dialbase._dispatch``, whose owner holds the
    running services (set by the lifespan)."""
    owner: Any = getattr(app, "__self__", None)
    if owner is None:
        raise TypeError("the idempotency middleware wraps a Dialbase application's dispatch")
    return Idempotency(app, lambda: owner.services.engine)
