"""Console writes when the database connection drops or Redis hangs: a clear 503 page,
nothing stored, nothing done twice; a hung Redis costs a sign-in its timeout, not a 500."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from dialbase.campaigns.models import Campaign
from dialbase.console.models import ConsoleSession
from dialbase.console.session import COOKIE
from dialbase.db import session_scope
from tests.conftest import Backend, RedisPeer, client_for_app
from tests.console.conftest import ACME_KEY, console_app
from tests.console.helpers import ConsoleUser, form_token
from tests.faults.lost import fails_at

DOWN = "The database is unavailable; nothing was stored."


async def _count(app: Any, table: Any) -> int:
    async with session_scope(app.services.sessionmaker) as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_a_sign_in_losing_its_connection_answers_503_and_opens_no_session(
    console, backend: Backend
):
    async with client_for_app(console) as client:
        page = await client.get("/console/sign-in")
        with fails_at(console, backend, "INSERT INTO CONSOLE_SESSIONS"):
            answer = await client.post(
                "/console/sign-in",
                data={"csrf_token": form_token(page.text), "username": "acme", "api_key": ACME_KEY},
            )
        assert answer.status_code == 503
        assert DOWN in answer.text
        assert COOKIE not in answer.headers.get("set-cookie", "")
    assert await _count(console, ConsoleSession) == 0


async def test_a_form_losing_its_connection_answers_503_and_stores_nothing(
    console, acme, backend: Backend
):
    before = await _count(console, Campaign)
    form = {"name": "Winter", "dial_type": "Progressive", "routing": "general"}
    with fails_at(console, backend, "INSERT INTO CAMPAIGNS"):
        answer = await acme.post("/console/campaigns", form)
    assert answer.status_code == 503
    assert DOWN in answer.text and "Traceback" not in answer.text
    assert await _count(console, Campaign) == before
    again = await acme.post("/console/campaigns", form)  # the user tries again: made once
    assert again.status_code == 303
    assert await _count(console, Campaign) == before + 1


async def test_a_key_rotation_whose_commit_fails_keeps_the_old_key(console, acme, backend, api):
    await acme.get("/console/account")
    with fails_at(console, backend, "COMMIT"):
        answer = await acme.post("/console/account/key")
    assert answer.status_code == 503
    assert 'id="new-key"' not in answer.text
    assert (await api.get("/v1/dnc", auth=("acme", ACME_KEY))).status_code == 200


async def test_a_hung_redis_still_answers_a_failed_sign_in(backend: Backend, redis_peer: RedisPeer):
    async with (
        console_app(backend, redis_url=redis_peer.url, redis_timeout_ms=100) as app,
        client_for_app(app) as client,
    ):
        user = ConsoleUser(client)
        refused = await user.sign_in("acme", "wrong-key-0000")
        assert refused.status_code == 401
        assert "Wrong user name or API key." in refused.text
        signed = await user.sign_in("acme", ACME_KEY)
        assert signed.status_code == 303
