#!/usr/bin/env python3
"""Minimal /v1 lease and outcome service: the baseline dialbase's dialer API is compared with.

It runs on a database migrated and seeded by dialbase (``bench/lease.py`` does that) and
uses dialbase's tables with raw SQL: ``accounts``, ``campaigns``, ``leads`` (the queue
index ``ix_leads_queue``) and ``leases``. Same paths and JSON shapes as dialbase:

- ``POST /v1/campaigns/{campaign}/leases``, body optional
  (``{"count": 1, "leaseSeconds": 300}``): one transaction that checks the Basic
  credentials (the account by user name, sha256 hex of the key against ``api_key_hash``),
  looks the campaign up, applies what time decided (lapsed leases and retries come due:
  ``pending`` again or ``done``; expired leads: ``expired``), picks the best pending leads
  (priority high to low, due time, id; one range of the queue index per zone key of the
  campaign in ``campaign_zones``, merged, as dialbase reads it; calling hours are not
  applied), marks them leased (attempts + 1, ``due_at`` = the deadline), inserts the
  lease rows and commits.
- ``POST /v1/leases/{leaseId}/outcome`` (``{"outcome": "no_answer"}``): one transaction
  that marks the lease reported and moves its lead to ``retry`` (due after the campaign's
  retry delay) after ``no_answer``, ``busy`` or ``failed`` while attempts remain, else to
  ``done``.

SQLite: one sqlite3 connection called in the handler (WAL, ``synchronous=NORMAL``, like
dialbase), each transaction begun with ``BEGIN IMMEDIATE``. PostgreSQL: an asyncpg pool
of 10 (dialbase's default), the pick and the mark in one
``UPDATE ... FROM (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``. General-routing
campaigns only (agent- and skill-wise ones answer 422); errors are bare problem details.

    .venv/bin/python bench/lease_reference_app.py --port 8001 --database-url sqlite:///tmp/q.db
"""

import base64
import hashlib
import hmac
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import asyncpg
import orjson
from reference_server import serve
from starlette.responses import Response
from starlette.routing import Route

OUTCOMES = ("connected", "no_answer", "busy", "failed", "invalid_number", "do_not_call")
RETRYABLE = ("no_answer", "busy", "failed")
SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # how dialbase's UTCDateTime stores instants on SQLite


class Problem(Exception):
    def __init__(self, status: int, detail: str):
        self.status, self.detail = status, detail


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def lease_body(row, lease_id: str, deadline: datetime) -> dict:
    lead_id, phone, name, priority, agent_id, skill, extra, attempts = row
    return {
        "leaseId": lease_id,
        "deadline": iso(deadline),
        "lead": {
            "phoneNumber": phone,
            "name": name,
            "priority": priority,
            "agentId": agent_id,
            "skill": skill,
            "extra": orjson.loads(extra) if isinstance(extra, str | bytes) else extra or {},
            "attempt": attempts + 1,
        },
    }


def next_state(outcome: str, attempt: int, max_attempts: int, delay: int, now: datetime):
    """(lead status, next attempt time or None), by the campaign's retry policy."""
    if outcome in RETRYABLE and attempt < max_attempts:
        return "retry", now + timedelta(seconds=delay)
    return "done", None


def check_key(found, api_key: str) -> int:
    """The account id, if the key matches the account row (id, api_key_hash)."""
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    if found is None or not hmac.compare_digest(found[1], digest):
        raise Problem(401, "wrong user name or API key")
    return found[0]


def check_campaign(campaign, name: str) -> None:
    if campaign is None:
        raise Problem(404, f"no campaign named {name!r}")
    if campaign[2] != "general":
        raise Problem(422, "the reference app leases from general campaigns only")
    if not campaign[1]:
        raise Problem(409, f"campaign {name!r} is stopped")


def check_lease(found, lease_id: str, now) -> None:
    """found: (lead_id, attempt, outcome, deadline, max_attempts, retry_delay_seconds)."""
    if found is None:
        raise Problem(404, f"no lease {lease_id!r}")
    if found[2] is not None:
        raise Problem(409, f"lease {lease_id!r} was already reported ({found[2]})")
    if found[3] <= now:
        raise Problem(409, f"lease {lease_id!r} expired")


# The statements both stores share; {n} is a placeholder ($n on PostgreSQL, ? on SQLite).
ACCOUNT = "SELECT id, api_key_hash FROM accounts WHERE username = {1}"
CAMPAIGN = (
    "SELECT id, running, routing, max_attempts FROM campaigns WHERE account_id = {1} AND name = {2}"
)
WAKE = (
    "UPDATE leads SET status = CASE WHEN attempts >= {1} THEN 'done' ELSE 'pending' END"
    " WHERE id IN (SELECT id FROM leads WHERE campaign_id = {2}"
    " AND status IN ('leased', 'retry') AND due_at <= {3}{lock})"
)
EXPIRE = (
    "UPDATE leads SET status = 'expired' WHERE id IN (SELECT id FROM leads"
    " WHERE campaign_id = {1} AND status IN ('pending', 'retry') AND expires_at <= {2}{lock})"
)
ZONE_KEYS = "SELECT time_zones FROM campaign_zones WHERE campaign_id = {1}"
DUE = (
    "SELECT id, phone_number, name, priority, agent_id, skill, extra, attempts, due_at"
    " FROM leads WHERE campaign_id = {1} AND status = 'pending' AND time_zones = {2}"
    " AND (expires_at IS NULL OR expires_at > {3})"
    " ORDER BY priority DESC, due_at, id LIMIT {4}"
)
INSERT_LEASE = (
    "INSERT INTO leases (id, campaign_id, lead_id, attempt, agent_id, skill, leased_at,"
    " deadline) VALUES ({1}, {2}, {3}, {4}, {5}, {6}, {7}, {8})"
)
FIND_LEASE = (
    "SELECT l.lead_id, l.attempt, l.outcome, l.deadline, c.max_attempts,"
    " c.retry_delay_seconds FROM leases l JOIN campaigns c ON c.id = l.campaign_id"
    " WHERE l.id = {1} AND c.account_id = {2}"
)
REPORT_LEASE = (
    "UPDATE leases SET outcome = {1}, note = {2}, reported_at = {3}"
    " WHERE id = {4} AND outcome IS NULL"
)
MOVE_LEAD = (
    "UPDATE leads SET status = {1}, due_at = {2}"
    " WHERE id = {3} AND status = 'leased' AND attempts = {4}"
)


STATEMENTS = {
    "ACCOUNT": ACCOUNT,
    "CAMPAIGN": CAMPAIGN,
    "WAKE": WAKE,
    "EXPIRE": EXPIRE,
    "ZONE_KEYS": ZONE_KEYS,
    "DUE": DUE,
    "INSERT_LEASE": INSERT_LEASE,
    "FIND_LEASE": FIND_LEASE,
    "REPORT_LEASE": REPORT_LEASE,
    "MOVE_LEAD": MOVE_LEAD,
}


def statements(backend: str) -> dict:
    """STATEMENTS with the backend's placeholders and, on PostgreSQL, row locks."""
    if backend == "sqlite":
        marks, lock = ["?"] * 9, ""
    else:
        marks, lock = [f"${n}" for n in range(9)], " FOR UPDATE SKIP LOCKED"
    return {name: sql.format(*marks, lock=lock) for name, sql in STATEMENTS.items()}


class SqliteStore:
    """One connection, used only between awaits: each transaction runs to its end at once."""

    def __init__(self, url: str):
        self.db = sqlite3.connect(
            url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
        )
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            self.db.execute(f"PRAGMA {pragma}")
        self.sql = statements("sqlite")

    def _run(self, work, *args):
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work(db, *args)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    async def lease(self, user, key, name, count, seconds, agent_id, skill) -> list:
        return self._run(self._lease, user, key, name, count, seconds, agent_id, skill)

    def _lease(self, db, user, key, name, count, seconds, agent_id, skill) -> list:
        sql = self.sql
        account_id = check_key(db.execute(sql["ACCOUNT"], (user,)).fetchone(), key)
        campaign = db.execute(sql["CAMPAIGN"], (account_id, name)).fetchone()
        check_campaign(campaign, name)
        now_dt = datetime.now(UTC)
        now = now_dt.strftime(SQLITE_FORMAT)
        db.execute(sql["WAKE"], (campaign[3], campaign[0], now))
        db.execute(sql["EXPIRE"], (campaign[0], now))
        keys = [row[0] for row in db.execute(sql["ZONE_KEYS"], (campaign[0],))]
        rows = [
            row
            for key in keys
            for row in db.execute(sql["DUE"], (campaign[0], key, now, count)).fetchall()
        ]
        rows = sorted(rows, key=lambda r: (-r[3], r[8], r[0]))[:count]  # queue order
        if not rows:
            return []
        deadline_dt = now_dt + timedelta(seconds=seconds)
        deadline = deadline_dt.strftime(SQLITE_FORMAT)
        db.executemany(
            "UPDATE leads SET status = 'leased', attempts = attempts + 1, due_at = ? WHERE id = ?",
            [(deadline, row[0]) for row in rows],
        )
        leases = []
        for row in rows:
            lease_id = uuid.uuid4().hex
            db.execute(
                sql["INSERT_LEASE"],
                (lease_id, campaign[0], row[0], row[7] + 1, agent_id, skill, now, deadline),
            )
            leases.append(lease_body(row[:8], lease_id, deadline_dt))
        return leases

    async def report(self, user, key, lease_id, outcome, note) -> dict:
        return self._run(self._report, user, key, lease_id, outcome, note)

    def _report(self, db, user, key, lease_id, outcome, note) -> dict:
        sql = self.sql
        account_id = check_key(db.execute(sql["ACCOUNT"], (user,)).fetchone(), key)
        found = db.execute(sql["FIND_LEASE"], (lease_id, account_id)).fetchone()
        now_dt = datetime.now(UTC)
        now = now_dt.strftime(SQLITE_FORMAT)
        check_lease(found, lease_id, now)
        lead_id, attempt, _, _, max_attempts, delay = found
        status, due = next_state(outcome, attempt, max_attempts, delay, now_dt)
        if not db.execute(sql["REPORT_LEASE"], (outcome, note, now, lease_id)).rowcount:
            raise Problem(409, f"lease {lease_id!r} was already reported")
        due_text = (due or now_dt).strftime(SQLITE_FORMAT)
        if not db.execute(sql["MOVE_LEAD"], (status, due_text, lead_id, attempt)).rowcount:
            raise Problem(409, f"lease {lease_id!r} expired")
        return report_body(lease_id, outcome, status, attempt, due)

    async def close(self) -> None:
        self.db.close()


PG_PICK = (
    "UPDATE leads l SET status = 'leased', attempts = l.attempts + 1, due_at = $4"
    " FROM (SELECT o.id, o.due_at FROM campaign_zones k CROSS JOIN LATERAL ("
    "SELECT id, priority, due_at FROM leads WHERE campaign_id = $1 AND status = 'pending'"
    " AND time_zones = k.time_zones AND (expires_at IS NULL OR expires_at > $2)"
    " ORDER BY priority DESC, due_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) o"
    " WHERE k.campaign_id = $1 ORDER BY o.priority DESC, o.due_at, o.id LIMIT $3) AS picked"
    " WHERE l.id = picked.id"
    " RETURNING l.id, l.phone_number, l.name, l.priority, l.agent_id, l.skill, l.extra,"
    " l.attempts - 1, picked.due_at"
)


class PostgresStore:
    async def open(self, url: str) -> "PostgresStore":
        self.pool = await asyncpg.create_pool(url, min_size=4, max_size=10)
        self.sql = statements("postgres")
        return self

    async def lease(self, user, key, name, count, seconds, agent_id, skill) -> list:
        sql = self.sql
        async with self.pool.acquire() as db, db.transaction():
            account_id = check_key(await db.fetchrow(sql["ACCOUNT"], user), key)
            campaign = await db.fetchrow(sql["CAMPAIGN"], account_id, name)
            check_campaign(campaign, name)
            now = datetime.now(UTC)
            await db.execute(sql["WAKE"], campaign[3], campaign[0], now)
            await db.execute(sql["EXPIRE"], campaign[0], now)
            deadline = now + timedelta(seconds=seconds)
            rows = await db.fetch(PG_PICK, campaign[0], now, count, deadline)
            rows = sorted(rows, key=lambda r: (-r[3], r[8], r[0]))  # queue order
            records = [
                (uuid.uuid4().hex, campaign[0], r[0], r[7] + 1, agent_id, skill, now, deadline)
                for r in rows
            ]
            if records:
                await db.executemany(sql["INSERT_LEASE"], records)
        return [lease_body(r[:8], rec[0], deadline) for r, rec in zip(rows, records, strict=True)]

    async def report(self, user, key, lease_id, outcome, note) -> dict:
        sql = self.sql
        async with self.pool.acquire() as db, db.transaction():
            account_id = check_key(await db.fetchrow(sql["ACCOUNT"], user), key)
            found = await db.fetchrow(sql["FIND_LEASE"], lease_id, account_id)
            now = datetime.now(UTC)
            check_lease(found, lease_id, now)
            lead_id, attempt, _, _, max_attempts, delay = found
            status, due = next_state(outcome, attempt, max_attempts, delay, now)
            if await db.execute(sql["REPORT_LEASE"], outcome, note, now, lease_id) == "UPDATE 0":
                raise Problem(409, f"lease {lease_id!r} was already reported")
            moved = await db.execute(sql["MOVE_LEAD"], status, due or now, lead_id, attempt)
            if moved == "UPDATE 0":
                raise Problem(409, f"lease {lease_id!r} expired")
        return report_body(lease_id, outcome, status, attempt, due)

    async def close(self) -> None:
        await self.pool.close()


def report_body(lease_id: str, outcome: str, status: str, attempt: int, due) -> dict:
    return {
        "leaseId": lease_id,
        "outcome": outcome,
        "leadStatus": status,
        "attempt": attempt,
        "nextAttemptAt": iso(due) if due else None,
    }


def credentials(request) -> tuple[str, str]:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    try:
        user, sep, key = base64.b64decode(token, validate=True).decode().partition(":")
    except ValueError:
        sep = ""
    if scheme.lower() != "basic" or not sep:
        raise Problem(401, "send HTTP Basic credentials: your user name and API key")
    return user, key


async def json_body(request) -> dict:
    raw = await request.body()
    try:
        data = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        raise Problem(422, "malformed JSON") from None
    if not isinstance(data, dict):
        raise Problem(422, "the body must be a JSON object")
    return data


def problem(exc: Problem) -> Response:
    body = {
        "type": "about:blank",
        "title": HTTPStatus(exc.status).phrase,
        "status": exc.status,
        "detail": exc.detail,
    }
    return Response(orjson.dumps(body), exc.status, media_type="application/problem+json")


def answer(data: dict) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


async def lease_leads(request):
    try:
        user, key = credentials(request)
        body = await json_body(request)
        count, seconds = body.get("count", 1), body.get("leaseSeconds", 300)
        if not (type(count) is int and 1 <= count <= 100):
            raise Problem(422, "count must be between 1 and 100")
        if not (type(seconds) is int and 1 <= seconds <= 3600):
            raise Problem(422, "leaseSeconds must be between 1 and 3600")
        name = request.path_params["campaign"]
        leases = await request.app.state.store.lease(
            user, key, name, count, seconds, body.get("agentId"), body.get("skill")
        )
    except Problem as exc:
        return problem(exc)
    return answer({"leases": leases})


async def report_outcome(request):
    try:
        user, key = credentials(request)
        body = await json_body(request)
        outcome, note = body.get("outcome"), body.get("note")
        if outcome not in OUTCOMES:
            raise Problem(422, f"outcome must be one of {', '.join(OUTCOMES)}")
        lease_id = request.path_params["lease_id"]
        report = await request.app.state.store.report(user, key, lease_id, outcome, note)
    except Problem as exc:
        return problem(exc)
    return answer(report)


ROUTES = [
    Route("/v1/campaigns/{campaign:path}/leases", lease_leads, methods=["POST"]),
    Route("/v1/leases/{lease_id}/outcome", report_outcome, methods=["POST"]),
]

if __name__ == "__main__":
    serve(__doc__, ROUTES, SqliteStore, PostgresStore)
