"""Generate Token with settings of its own: the per-address budget, the signing secret,
a database failing mid-way (503, nothing half-done) and a hung Redis (fails open)."""

from __future__ import annotations

import time

import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from dialbase.accounts.models import Account
from dialbase.db import session_scope
from tests.compat.helpers import client_for, running_app
from tests.compat.test_tokens import (
    INVALID_LOGIN,
    INVALID_TOKEN,
    KEY,
    SECRET,
    STORED,
    add_with,
    generate,
    new_token,
    token_rows,
)
from tests.conftest import Backend, RedisPeer, needs_postgres
from tests.deploy.processes import TcpProxy
from tests.factories import all_leads, make_account, make_campaign
from tests.faults.lost import fails_at

DOWN = {
    "status": "false",
    "message": "The database is unavailable; nothing was stored. Try again shortly.",
    "data": None,
}


async def _token_account(app) -> None:  # type: ignore[no-untyped-def]
    sessions = app.services.sessionmaker
    await make_account(sessions, "tok", KEY, auth_mode="TOKEN_AUTH")
    await make_campaign(sessions, "Sales", username="tok")


async def _current_token_id(sessions) -> str | None:  # type: ignore[no-untyped-def]
    async with session_scope(sessions, read_only=True) as session:
        return await session.scalar(select(Account.token_id).where(Account.username == "tok"))


async def test_a_failed_user_or_key_counts_against_the_address_budget(backend: Backend):
    """Check 3 counts by client address (DIALBASE_IP_RATE_LIMIT); over it, 429."""
    async with running_app(backend.settings(token_secret=SECRET, ip_rate_limit=3)) as app:
        await _token_account(app)
        wrong = {"userName": "tok", "apiKey": "wrong-key-123"}
        async with client_for(app, "198.51.100.9") as client:
            answers = [await generate(client, wrong) for _ in range(4)]
            assert [r.status_code for r in answers] == [200, 200, 200, 429]
            assert [r.json() for r in answers[:3]] == [INVALID_LOGIN] * 3
            assert answers[3].json()["status"] == "false"
            assert answers[3].json()["data"] is None
            assert 1 <= int(answers[3].headers["Retry-After"]) <= 60
        async with client_for(app, "198.51.100.10") as other:  # another address: its own budget
            assert (await generate(other, wrong)).json() == INVALID_LOGIN
            await new_token(other)


async def test_a_secret_made_on_first_use_is_kept_and_shared_by_every_worker(backend: Backend):
    """Without DIALBASE_TOKEN_SECRET, one secret is created once and kept in the database:
    a token issued by one application is accepted by another on the same database."""
    async with (
        running_app(backend.settings(token_secret=None)) as one,
        running_app(backend.settings(token_secret=None)) as two,
    ):
        await _token_account(one)
        async with client_for(one) as c1, client_for(two) as c2:
            token = await new_token(c1)
            with pytest.raises(jwt.InvalidSignatureError):
                jwt.decode(token, SECRET, algorithms=["HS512"])
            assert await add_with(c2, token, "9000000001") == STORED
            assert await add_with(c1, token, "9000000002") == STORED
            newer = await new_token(c2)
            assert await add_with(c1, token, "9000000003") == INVALID_TOKEN
            assert await add_with(c1, newer, "9000000004") == STORED
    restarted = running_app(backend.settings(token_secret=None))
    async with restarted as three, client_for(three) as c3:
        assert await add_with(c3, newer, "9000000005") == STORED


async def test_a_token_works_only_with_the_secret_it_was_signed_with(backend: Backend):
    async with running_app(backend.settings(token_secret=SECRET)) as app:
        await _token_account(app)
        async with client_for(app) as client:
            token = await new_token(client)
    other = "another-secret-of-sufficient-length-0123456789abcdef0123456789ab"
    async with running_app(backend.settings(token_secret=other)) as app, client_for(app) as c:
        assert await add_with(c, token, "9000000001") == INVALID_TOKEN


@pytest.mark.parametrize(
    "point",
    ["INSERT INTO API_TOKENS", "UPDATE ACCOUNTS", "UPDATE CONFIG_REVISION", "COMMIT"],
    ids=["insert-token", "set-token-id", "bump-revision", "commit"],
)
async def test_a_connection_lost_mid_way_answers_503_and_changes_nothing(
    backend: Backend, point: str
):
    async with running_app(backend.settings(token_secret=SECRET)) as app:
        await _token_account(app)
        sessions = app.services.sessionmaker
        async with client_for(app) as client:
            token = await new_token(client)
            current = await _current_token_id(sessions)
            rows = await token_rows(sessions)
            with fails_at(app, backend, point):
                failed = await generate(client, {"userName": "tok", "apiKey": KEY})
            assert (failed.status_code, failed.json()) == (503, DOWN)
            assert await _current_token_id(sessions) == current
            assert await token_rows(sessions) == rows
            assert await add_with(client, token, "9000000001") == STORED  # still the current one
            newer = await new_token(client)  # and the next request works
            assert await add_with(client, newer, "9000000002") == STORED
            assert await add_with(client, token, "9000000003") == INVALID_TOKEN


@needs_postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_postgres_cut_off_answers_503_and_the_token_survives(backend: Backend):
    target = make_url(backend.database_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    proxy.start()
    try:
        through = target.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False
        )
        settings = backend.settings(
            database_url=through, token_secret=SECRET, db_connect_timeout=1.0
        )
        async with running_app(settings) as app, client_for(app) as client:
            await _token_account(app)
            token = await new_token(client)
            proxy.cut()
            failed = await generate(client, {"userName": "tok", "apiKey": KEY})
            assert (failed.status_code, failed.json()) == (503, DOWN)
            proxy.restore()
            assert await add_with(client, token, "9000000001") == STORED
            assert [lead.phone_number for lead in await all_leads(app.services.sessionmaker)] == [
                "9000000001"
            ]
    finally:
        proxy.close()


async def test_a_hung_redis_does_not_break_tokens(backend: Backend, redis_peer: RedisPeer):
    """Redis accepts connections and never answers: the limiter fails open."""
    settings = backend.settings(token_secret=SECRET, redis_url=redis_peer.url, redis_timeout_ms=100)
    async with running_app(settings) as app, client_for(app) as client:
        await _token_account(app)
        started = time.monotonic()
        token = await new_token(client)
        assert await add_with(client, token, "9000000001") == STORED
        wrong = await generate(client, {"userName": "tok", "apiKey": "wrong-key-123"})
        assert wrong.json() == INVALID_LOGIN
        assert time.monotonic() - started < 3.0
