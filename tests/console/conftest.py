"""Console fixtures: an application with accounts "acme" and "other", each with a campaign."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from dialbase.app import create_app
from tests.conftest import Backend, client_for_app
from tests.console.helpers import ConsoleUser
from tests.factories import make_account, make_campaign

ACME_KEY = "acme-secret-key"
OTHER_KEY = "other-secret-key"


@contextlib.asynccontextmanager
async def console_app(backend: Backend, **settings: Any) -> AsyncIterator[Any]:
    application = create_app(backend.settings(**settings), migrate=False)
    async with application.lifespan():
        sessions = application.services.sessionmaker
        await make_account(sessions, "acme", ACME_KEY, default_country="IN")
        await make_campaign(sessions, "Sales", username="acme")
        await make_account(sessions, "other", OTHER_KEY, default_country="IN")
        await make_campaign(sessions, "Secret", username="other")
        yield application


@pytest.fixture
async def console(backend: Backend) -> AsyncIterator[Any]:
    async with console_app(backend) as application:
        yield application


@pytest.fixture
async def acme(console: Any) -> AsyncIterator[ConsoleUser]:
    async with client_for_app(console) as client:
        user = ConsoleUser(client)
        answer = await user.sign_in("acme", ACME_KEY)
        assert answer.status_code == 303
        yield user


@pytest.fixture
async def api(console: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for_app(console) as client:
        yield client
