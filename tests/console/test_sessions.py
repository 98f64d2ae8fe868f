"""Signing in and out: the session cookie, the idle timeout, CSRF, the failed sign-in budget."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from dialbase.campaigns.models import Campaign
from dialbase.console.models import ConsoleSession
from dialbase.console.session import COOKIE
from dialbase.db import session_scope, utcnow
from tests.conftest import Backend, client_for_app
from tests.console.conftest import ACME_KEY, console_app
from tests.console.helpers import ConsoleUser, form_token


async def _sessions(app: Any) -> int:
    async with session_scope(app.services.sessionmaker) as session:
        return int(await session.scalar(select(func.count()).select_from(ConsoleSession)) or 0)


async def _campaigns(app: Any) -> list[str]:
    async with session_scope(app.services.sessionmaker) as session:
        return list(await session.scalars(select(Campaign.name).order_by(Campaign.name)))


async def test_signing_in_sets_a_signed_httponly_strict_cookie_and_stores_a_session(console):
    async with client_for_app(console) as client:
        page = await client.get("/console/sign-in")
        assert page.status_code == 200
        assert 'for="f-username">User name<' in page.text
        assert 'for="f-api_key">API key<' in page.text
        answer = await client.post(
            "/console/sign-in",
            data={"csrf_token": form_token(page.text), "username": "acme", "api_key": ACME_KEY},
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/campaigns"
        cookie = next(
            h for h in answer.headers.get_list("set-cookie") if h.startswith(f"{COOKIE}=")
        )
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Path=/console" in cookie
        assert (await client.get("/console/campaigns")).status_code == 200
    assert await _sessions(console) == 1


async def test_a_wrong_key_is_refused_in_words_and_opens_no_session(console):
    async with client_for_app(console) as client:
        user = ConsoleUser(client)
        answer = await user.sign_in("acme", "not-the-key")
        assert answer.status_code == 401
        assert "Wrong user name or API key." in answer.text
        shown = await client.get("/console/campaigns")
        assert shown.status_code == 303
        assert shown.headers["location"] == "/console/sign-in"
    assert await _sessions(console) == 0


async def test_failed_sign_ins_spend_the_addresses_budget_shared_with_the_api(backend: Backend):
    async with console_app(backend, ip_rate_limit=3) as app, client_for_app(app) as client:
        user = ConsoleUser(client)
        for _ in range(3):
            assert (await user.sign_in("acme", "wrong-key-0000")).status_code == 401
        refused = await user.sign_in("acme", "wrong-key-0000")
        assert refused.status_code == 429
        right = await user.sign_in("acme", ACME_KEY)  # over the budget: not even checked
        assert right.status_code == 429
        assert "Too many failed sign-ins from this address" in right.text
        # The same budget as the API's failed authentications: /v1 is refused too.
        api = await client.post("/v1/campaigns/Sales/leases", auth=("acme", "wrong-key-0000"))
        assert api.status_code == 429
    assert await _sessions(app) == 0


async def test_signing_out_ends_the_session_on_the_server(console):
    async with client_for_app(console) as client:
        user = ConsoleUser(client)
        await user.sign_in("acme", ACME_KEY)
        cookie = client.cookies.get(COOKIE, path="/console")
        assert cookie
        answer = await user.post("/console/sign-out")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/sign-in"
    assert await _sessions(console) == 0
    async with client_for_app(console) as replay:  # the old cookie, sent again
        replay.cookies.set(COOKIE, cookie, domain="dialbase.test", path="/console")
        answer = await replay.get("/console/campaigns")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/sign-in"


async def test_an_idle_session_ends_and_its_row_is_deleted(console):
    async with client_for_app(console) as client:
        user = ConsoleUser(client)
        await user.sign_in("acme", ACME_KEY)
        idle = console.services.settings.console_idle_minutes
        async with session_scope(console.services.sessionmaker) as session:
            await session.execute(
                update(ConsoleSession).values(
                    last_seen_at=utcnow() - timedelta(minutes=idle, seconds=1)
                )
            )
        answer = await client.get("/console/campaigns")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/sign-in"
    assert await _sessions(console) == 0


async def test_a_session_in_use_is_kept_past_the_idle_time_since_sign_in(console):
    async with client_for_app(console) as client:
        user = ConsoleUser(client)
        await user.sign_in("acme", ACME_KEY)
        idle = console.services.settings.console_idle_minutes
        async with session_scope(console.services.sessionmaker) as session:
            await session.execute(
                update(ConsoleSession).values(
                    created_at=utcnow() - timedelta(minutes=idle * 3),
                    last_seen_at=utcnow() - timedelta(minutes=idle - 1),
                )
            )
        assert (await client.get("/console/campaigns")).status_code == 200
        async with session_scope(console.services.sessionmaker) as session:
            seen = await session.scalar(select(ConsoleSession.last_seen_at))
        assert seen is not None and utcnow() - seen < timedelta(minutes=1)


async def test_a_tampered_cookie_is_sent_to_sign_in(console):
    async with client_for_app(console) as client:
        user = ConsoleUser(client)
        await user.sign_in("acme", ACME_KEY)
        cookie = client.cookies.get(COOKIE, path="/console")
        assert cookie
        session_id, _, signature = cookie.partition(".")
        last = "B" if session_id.endswith("A") else "A"
        client.cookies.set(
            COOKIE, f"{session_id[:-1]}{last}.{signature}", domain="dialbase.test", path="/console"
        )
        answer = await client.get("/console/campaigns")
        assert answer.status_code == 303


async def test_a_form_without_the_sessions_csrf_token_changes_nothing(console, acme):
    before = await _campaigns(console)
    for token in (None, "forged-token"):
        data = {"name": "Forged", "dial_type": "Progressive", "routing": "general"}
        if token is not None:
            data["csrf_token"] = token
        answer = await acme.client.post("/console/campaigns", data=data)
        assert answer.status_code == 403
        assert "Nothing was changed" in answer.text
    assert await _campaigns(console) == before


async def test_the_sign_in_form_needs_its_own_token(console):
    async with client_for_app(console) as client:
        answer = await client.post(
            "/console/sign-in",
            data={"csrf_token": "made-up", "username": "acme", "api_key": ACME_KEY},
        )
        assert answer.status_code == 403
    assert await _sessions(console) == 0
