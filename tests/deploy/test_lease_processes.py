"""Exactly-once hand-out through real servers: several OS processes lease and report over
HTTP until the campaign is drained.

PostgreSQL: two servers with two workers each on one database. SQLite: one server with
three workers on one file. Four dialer processes (spawned, each with its own HTTP client,
a new connection per request so that every request may reach any worker) lease 1 to 4
leads at a time and report a deterministic outcome for each (no answer for half the first
attempts, which come back at once for their second), until a few empty lease answers in a
row are followed by statistics saying nothing is due, leased or waiting. Every (lead,
attempt) must be handed out exactly once, exactly as the retry policy says, every answer
must be a 200, and every lead must end done.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import shutil
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from dialbase.config import Settings
from dialbase.db import create_engine, make_sessionmaker, session_scope
from dialbase.dialer.models import Lease
from dialbase.leads.models import Lead
from dialbase.migrate import upgrade
from tests.conftest import needs_postgres
from tests.deploy.processes import Server, clean_env, wait_all_ready
from tests.dialer.helpers import add_leads, running_campaign, set_campaign

LEADS = 300
MAX_ATTEMPTS = 2
DIALERS = 4
EMPTY_ANSWERS_TO_CHECK = 3  # consecutive empty lease answers, then: is the campaign drained?
IDLE_SLEEP = 0.02
DRAIN_TIMEOUT = 60.0  # each dialer's bound on its whole loop
REQUEST_TIMEOUT = 10.0
USER, KEY = "acme", "acme-secret-key"
PHONES = [f"90000{n:05d}" for n in range(LEADS)]

# Every lease a dialer process was handed: (phone number, attempt, lease id).
Handed = list[tuple[str, int, str]]


def outcome_for(phone: str, attempt: int) -> str:
    """Half of the first attempts get no answer (and come back at once); the rest connect."""
    return "no_answer" if (int(phone) + attempt) % 2 else "connected"


def expected_attempts(phone: str) -> list[int]:
    return [1, 2] if outcome_for(phone, 1) == "no_answer" else [1]


def expected_lead_status(phone: str, attempt: int) -> str:
    retried = outcome_for(phone, attempt) == "no_answer" and attempt < MAX_ATTEMPTS
    return "retry" if retried else "done"


# --- the dialer process (spawned: module-level, arguments and results picklable) -------

_start: Any = None  # a Barrier shared by the dialer processes (set by ``_init``)


def _init(start: Any) -> None:
    global _start
    _start = start


class Dialer:
    """One dialer process's HTTP client and what it saw."""

    def __init__(self, http: httpx.Client, urls: list[str], seed: int) -> None:
        self.http, self.urls, self.turn = http, urls, seed
        self.rng = random.Random(seed)
        self.handed: Handed = []
        self.statuses: list[tuple[str, int]] = []
        self.failures: list[str] = []

    def call(self, kind: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The answer's JSON, or None (recorded as a failure) unless it is a 200."""
        url = self.urls[self.turn % len(self.urls)]
        self.turn += 1
        if body is None:
            response = self.http.get(url + path)
        else:
            response = self.http.post(url + path, json=body)
        self.statuses.append((kind, response.status_code))
        if response.status_code != 200:
            self.failures.append(f"{kind} {url}{path}: {response.status_code} {response.text}")
            return None
        return response.json()

    def lease(self) -> list[dict[str, Any]]:
        body = {"count": self.rng.randint(1, 4), "leaseSeconds": 600}
        answer = self.call("lease", "/v1/campaigns/Sales/leases", body)
        return answer["leases"] if answer is not None else []

    def report(self, item: dict[str, Any]) -> None:
        phone, attempt = item["lead"]["phoneNumber"], item["lead"]["attempt"]
        self.handed.append((phone, attempt, item["leaseId"]))
        outcome = outcome_for(phone, attempt)
        got = self.call("outcome", f"/v1/leases/{item['leaseId']}/outcome", {"outcome": outcome})
        want = (attempt, expected_lead_status(phone, attempt))
        if got is not None and (got["attempt"], got["leadStatus"]) != want:
            self.failures.append(f"{phone} attempt {attempt} {outcome}: answered {got}")

    def drained(self) -> bool:
        """Nothing due, leased or waiting for a retry (by the campaign's statistics)."""
        stats = self.call("stats", "/v1/campaigns/Sales/stats")
        leads = stats["leads"] if stats is not None else {}
        return sum(leads.get(k, 1) for k in ("pending", "leased", "retryScheduled")) == 0

    def run(self, deadline: float) -> bool:
        """Lease and report until the campaign is drained; False if time ran out or an
        answer was wrong (then the test fails anyway: no waiting for the deadline)."""
        empty = 0
        while time.monotonic() < deadline and not self.failures:
            leases = self.lease()
            for item in leases:
                self.report(item)
            empty = 0 if leases else empty + 1
            if empty >= EMPTY_ANSWERS_TO_CHECK:
                if self.drained():
                    return True
                empty = 0
            if not leases:
                time.sleep(IDLE_SLEEP)
        return False


def dial(urls: list[str], seed: int) -> dict[str, Any]:
    """One dialer process: its leases, the status of every answer ((kind, status)), the
    answers that were wrong, and whether it saw the campaign drained."""
    _start.wait(30)
    deadline = time.monotonic() + DRAIN_TIMEOUT
    limits = httpx.Limits(max_keepalive_connections=0)
    auth = httpx.BasicAuth(USER, KEY)
    with httpx.Client(timeout=REQUEST_TIMEOUT, limits=limits, auth=auth) as http:
        dialer = Dialer(http, urls, seed)
        finished = dialer.run(deadline)
    return {
        "handed": dialer.handed,
        "statuses": dialer.statuses,
        "failures": dialer.failures,
        "finished": finished,
    }


def run_dialers(urls: list[str]) -> list[dict[str, Any]]:
    """``DIALERS`` spawned processes, started together; dialer ``i`` begins at ``urls[i]``."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(DIALERS)
    with ProcessPoolExecutor(
        DIALERS, mp_context=context, initializer=_init, initargs=(start,)
    ) as pool:
        futures = [pool.submit(dial, urls, seed) for seed in range(DIALERS)]
        return [future.result(timeout=DRAIN_TIMEOUT + 60) for future in futures]


# --- seeding and reading the database in this process ---------------------------------


async def seed_campaign(url: str) -> None:
    """Account ``acme``, its running campaign ``Sales`` (2 attempts, retry at once) and
    ``LEADS`` pending leads of mixed priority."""
    engine = create_engine(Settings(database_url=url))
    try:
        await upgrade(engine)
        sessions = make_sessionmaker(engine)
        await running_campaign(sessions)
        await set_campaign(sessions, max_attempts=MAX_ATTEMPTS, retry_delay=0)
        await add_leads(sessions, *({"phone_number": p, "priority": int(p) % 3} for p in PHONES))
    finally:
        await engine.dispose()


async def stored(url: str) -> tuple[Counter[str], dict[str, list[Lease]]]:
    """Leads by status, and every lead's leases."""
    engine = create_engine(Settings(database_url=url))
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            rows = await session.execute(select(Lead.status, func.count()).group_by(Lead.status))
            by_status = Counter({status: count for status, count in rows})
            leases: dict[str, list[Lease]] = defaultdict(list)
            pairs = await session.execute(
                select(Lead.phone_number, Lease).join(Lease, Lease.lead_id == Lead.id)
            )
            for phone, lease in pairs:
                leases[phone].append(lease)
    finally:
        await engine.dispose()
    return by_status, leases


# --- the check shared by both backends ------------------------------------------------


def drain_and_check(urls: list[str], database_url: str) -> None:
    results = run_dialers(urls)
    check_answers(results)
    check_database(database_url)


def check_answers(results: list[dict[str, Any]]) -> None:
    """Exactly once first (the clearest report of a double hand-out), then the answers."""
    handed = [h for r in results for h in r["handed"]]
    lease_ids = Counter(lease_id for _, _, lease_id in handed)
    assert not [i for i, n in lease_ids.items() if n > 1], "a lease id was handed out twice"
    pairs = Counter((phone, attempt) for phone, attempt, _ in handed)
    twice = [pair for pair, n in pairs.items() if n > 1]
    assert not twice, f"{len(twice)} (lead, attempt) handed out twice, e.g. {twice[:5]}"

    failures = [f for r in results for f in r["failures"]]
    assert not failures, f"{len(failures)} answers were wrong, e.g. {failures[:5]}"
    assert all(r["finished"] for r in results), "the campaign was not drained in time"
    assert all(r["handed"] for r in results), "a dialer was handed nothing: no race happened"
    statuses = Counter(s for r in results for s in r["statuses"])
    assert {status for _, status in statuses} == {200}, statuses
    assert statuses[("outcome", 200)] == len(handed)

    expected = {(phone, attempt) for phone in PHONES for attempt in expected_attempts(phone)}
    missing, unexpected = sorted(expected - set(pairs)), sorted(set(pairs) - expected)
    assert not missing and not unexpected, f"missing {missing[:5]}, unexpected {unexpected[:5]}"


def check_database(database_url: str) -> None:
    """Every lead done; its leases one per attempt, reported, never overlapping."""
    by_status, leases = asyncio.run(stored(database_url))
    assert by_status == {"done": LEADS}
    for phone in PHONES:
        ordered = sorted(leases[phone], key=lambda lease: lease.attempt)
        assert [lease.attempt for lease in ordered] == expected_attempts(phone)
        assert [lease.outcome for lease in ordered] == [
            outcome_for(phone, lease.attempt) for lease in ordered
        ]
        for earlier, later in zip(ordered, ordered[1:], strict=False):
            assert earlier.reported_at is not None and earlier.reported_at <= later.leased_at


@needs_postgres
def test_two_postgres_servers_hand_every_lead_out_exactly_as_the_policy_says(servers, pg_url):
    asyncio.run(seed_campaign(pg_url))
    env = clean_env(
        DIALBASE_DATABASE_URL=pg_url, DIALBASE_DB_POOL_SIZE="3", DIALBASE_DB_MAX_OVERFLOW="3"
    )
    started: list[Server] = [servers(f"pg-{i}", env=env, workers=2) for i in range(2)]
    wait_all_ready(started)
    drain_and_check([server.url for server in started], pg_url)


def test_three_sqlite_workers_hand_every_lead_out_exactly_as_the_policy_says(
    servers, sqlite_template: Path, tmp_path: Path
):
    path = tmp_path / "leads.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    asyncio.run(seed_campaign(url))
    server = servers("sqlite", env=clean_env(DIALBASE_DATABASE_URL=url), workers=3)
    wait_all_ready([server])
    drain_and_check([server.url], url)
