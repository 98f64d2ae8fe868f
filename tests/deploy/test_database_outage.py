"""PostgreSQL goes away and comes back: 503 meanwhile, successes resume by themselves.

The shared PostgreSQL server is never stopped: dialbase reaches it through a TCP proxy
owned by the test, and the test cuts the proxy (listener and every connection) instead.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from dataclasses import dataclass, field

import httpx
from sqlalchemy.engine import make_url

from dialbase.app import create_app
from dialbase.config import Settings
from dialbase.errors import DATABASE_DOWN
from tests.conftest import needs_postgres
from tests.deploy.processes import TcpProxy, clean_env, wait_ready
from tests.deploy.traffic import (
    ADD,
    STORED,
    add_body,
    adds_until_killed,
    client,
    pg_numbers,
    seed_in_process,
)
from tests.factories import make_account, make_campaign

pytestmark = needs_postgres

UNAVAILABLE = {"status": "false", "message": DATABASE_DOWN, "data": None}
OUTAGE_TIMEOUT = 20.0


@dataclass
class Stream:
    """Adds with new numbers, a few at a time, until stopped; remembers every answer."""

    url: str
    answers: list[tuple[str, int, object]] = field(default_factory=list)
    started: list[float] = field(default_factory=list)  # when each answered request began
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, http: httpx.AsyncClient, lane: int) -> None:
        i = 0
        while not self.stopped.is_set():
            number = f"7{lane}{i:08d}"
            i += 1
            began = time.monotonic()
            response = await http.post(self.url + ADD, json=add_body(number))
            self.answers.append((number, response.status_code, response.json()))
            self.started.append(began)
            await asyncio.sleep(0.01)

    def since(self, moment: float) -> list[tuple[str, int, object]]:
        """The answers to requests begun at ``moment`` or later (a request begun during
        an outage may be answered after it, once its batch's outcome is settled)."""
        return [a for a, began in zip(self.answers, self.started, strict=True) if began >= moment]


async def _poll(http: httpx.AsyncClient, make_request, done, timeout: float = OUTAGE_TIMEOUT):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await make_request(http)
        if done(response):
            return response
        await asyncio.sleep(0.1)
    raise AssertionError(f"still {response.status_code} {response.text} after {timeout} s")


async def test_requests_get_503_while_postgres_is_cut_off_and_succeed_again_after(
    servers, pg_url: str
):
    await seed_in_process(pg_url)
    target = make_url(pg_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    proxy.start()
    try:
        through_proxy = target.set(host="127.0.0.1", port=proxy.port)
        env = clean_env(
            DIALBASE_DATABASE_URL=through_proxy.render_as_string(hide_password=False),
            DIALBASE_DB_POOL_SIZE="4",
            DIALBASE_DB_CONNECT_TIMEOUT="2",
        )
        server = servers("behind-proxy", env=env)
        wait_ready(server)
        stream = await _outage_and_recovery(server.url, proxy)
    finally:
        proxy.close()

    answered = stream.answers
    assert {status for _, status, _ in answered} <= {200, 503}
    assert all(body == STORED for _, status, body in answered if status == 200)
    assert all(body == UNAVAILABLE for _, status, body in answered if status == 503)
    succeeded = [number for number, status, _ in answered if status == 200]
    stored = set(await pg_numbers(pg_url))
    missing = [n for n in succeeded if n not in stored]
    assert not missing, f"{len(missing)} answered successes are not stored: {missing[:5]}"
    assert "Exception in ASGI application" not in server.output()


async def _outage_and_recovery(url: str, proxy: TcpProxy) -> Stream:
    stream = Stream(url)
    probes = iter(range(10**6))
    readyz = lambda http: http.get(url + "/readyz")  # noqa: E731

    async def add(http: httpx.AsyncClient) -> httpx.Response:
        number = f"79{next(probes):08d}"
        began = time.monotonic()
        response = await http.post(url + ADD, json=add_body(number))
        stream.answers.append((number, response.status_code, response.json()))
        stream.started.append(began)
        return response

    async with client(connections=16) as http:
        lanes = [asyncio.create_task(stream.run(http, lane)) for lane in range(4)]
        try:
            await asyncio.sleep(0.5)
            proxy.cut()
            cut_at = time.monotonic()
            down = await _poll(http, readyz, lambda r: r.status_code == 503)
            assert down.json()["checks"]["database"].startswith("unavailable")
            refused = await add(http)
            assert (refused.status_code, refused.json()) == (503, UNAVAILABLE)
            await asyncio.sleep(0.5)
            during = stream.since(cut_at)

            proxy.restore()
            back = await _poll(http, add, lambda r: r.status_code == 200)
            assert back.json() == STORED
            ready = await _poll(http, readyz, lambda r: r.status_code == 200)
            assert ready.json()["checks"] == {"database": "ok"}
            restored_at = time.monotonic()
            await asyncio.sleep(0.5)
            after = stream.since(restored_at)
        finally:
            stream.stopped.set()
            await asyncio.wait_for(asyncio.gather(*lanes), 30)

    assert any(status == 503 for _, status, _ in during), "no request saw the outage"
    assert after and all(status == 200 for _, status, _ in after), after[:3]
    return stream


async def test_a_request_that_gets_no_pooled_connection_in_time_gets_503(pg_url: str):
    settings = Settings(
        database_url=pg_url, db_pool_size=1, db_max_overflow=0, db_pool_timeout=0.01
    )
    app = create_app(settings)
    async with app.lifespan():
        await make_account(app.services.sessionmaker, rate_limit=100_000)
        await make_campaign(app.services.sessionmaker)  # the cache is cold: every request reads
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dialbase.test") as c:
            replies = await asyncio.gather(
                *(c.post(ADD, json=add_body(f"78{i:08d}")) for i in range(100))
            )

    seen = [(r.status_code, r.json()) for r in replies]
    assert {status for status, _ in seen} == {200, 503}
    assert all(body == (STORED if status == 200 else UNAVAILABLE) for status, body in seen)
    stored = set(await pg_numbers(pg_url))
    assert all(_number(r) in stored for r in replies if r.status_code == 200)


def _number(response: httpx.Response) -> str:
    return json.loads(response.request.content)["phoneNumber"]


async def test_sigkill_mid_stream_loses_no_success_and_stores_no_lead_twice(servers, pg_url: str):
    """Two workers on PostgreSQL killed (SIGKILL) with requests in flight, the duplicate
    check on: every lead answered "stored" is stored, exactly once; a new server then
    takes leads again."""
    await seed_in_process(pg_url)
    env = clean_env(DIALBASE_DATABASE_URL=pg_url)
    server = servers("killed", env=env, workers=2)
    wait_ready(server)
    stream = await adds_until_killed(server, 400, check_duplicate=True)
    assert stream.killed_after, "the server was never killed"
    assert not stream.other, [(r.status_code, r.text) for r in stream.other[:3]]
    stored = collections.Counter(await pg_numbers(pg_url))
    assert [n for n in stream.succeeded if stored[n] != 1] == []
    assert [n for n, count in stored.items() if count > 1] == []

    again = servers("after-kill", env=env)
    wait_ready(again)
    async with client() as http:
        response = await http.post(again.url + ADD, json=add_body("9999999999"))
    assert response.json() == STORED
