"""The bulk endpoint when the database fails: a connection lost at any statement of the
request, or at the commit, answers 503 in the endpoint's shape and queues nothing; the next
request works."""

from __future__ import annotations

from typing import Any

import pytest

from tests.compat.test_bulk import E, assert_queued, bulk_app, imports_of, post_bulk
from tests.compat.test_delete_faults import fails_at
from tests.conftest import Backend, client_for_app
from tests.factories import make_account, make_campaign

DOWN = E("The database is unavailable; nothing was stored. Try again shortly.")


async def _setup(app: Any) -> None:
    await make_account(app.services.sessionmaker)
    await make_campaign(app.services.sessionmaker)


@pytest.mark.parametrize(
    "point",
    ["SELECT", "INSERT INTO IMPORTS", "INSERT INTO IMPORT_ROWS", "COMMIT"],
    ids=["reading-the-account", "the-import", "its-rows", "commit"],
)
async def test_a_connection_lost_answers_503_and_queues_nothing(backend: Backend, point: str):
    async with bulk_app(backend.settings()) as app, client_for_app(app) as client:
        await _setup(app)
        await app.services.directory.refresh()  # nothing cached: the account is read
        with fails_at(app, backend, point):
            failed = await post_bulk(client, callBackUrl="http://8.8.8.8/hook")
        assert (failed.status_code, failed.json()) == (503, DOWN)
        assert failed.headers["content-type"] == "application/json"
        assert await imports_of(app.services.sessionmaker) == []
        transaction = assert_queued((await post_bulk(client)).json())
        assert [i.id for i in await imports_of(app.services.sessionmaker)] == [transaction]
