"""Inputs an attacker or a broken client sends (issue #8, defects 4, 6 and 7)."""

from __future__ import annotations

from sqlalchemy import event

from tests.compat.helpers import CHECK, URL, assert_our_error
from tests.factories import all_leads, body


def _nested(depth: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = [value]
    return value


async def test_a_value_nested_300_levels_is_a_400_before_anything_else(client, acme):
    for key in ("name", "crmField"):
        response = await client.post(URL, json=body(**{key: _nested(300)}))
        assert_our_error(response, 400)
        assert "nested deeper than 32 levels" in response.json()["message"]


async def test_a_value_nested_32_levels_is_accepted_as_an_extra_column(client, acme, sessionmaker):
    response = await client.post(URL, json=body(crmField=_nested(32)))
    assert response.json()["status"] == "Success"
    assert len(await all_leads(sessionmaker)) == 1


async def test_an_expiry_in_year_1_east_of_utc_is_in_the_past(client, sessionmaker):
    from tests.factories import make_account, make_campaign

    await make_account(sessionmaker, timezone="Asia/Kolkata")
    await make_campaign(sessionmaker)
    for date in ("0001-01-01 00:00:00", "0001-01-01"):
        response = await client.post(URL, json=body(expiryDate=date))
        assert response.json() == CHECK[11], date
    assert await all_leads(sessionmaker) == []


async def test_a_wrong_key_and_an_unknown_user_cost_the_same_queries(client, acme, app):
    """No timing tells whether a user name exists: both paths read the same rows."""
    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement.split()[0])

    engine = app.services.engine.sync_engine
    await client.post(URL, json=body())  # the account is cached now
    event.listen(engine, "before_cursor_execute", count)
    try:
        wrong_key = await client.post(URL, json=body(apiKey="wrong-key-123"))
        wrong_key_statements, statements[:] = list(statements), []
        unknown = await client.post(URL, json=body(userName="nobody"))
        unknown_statements = list(statements)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert wrong_key.json() == unknown.json() == CHECK[3]
    assert wrong_key_statements == unknown_statements
    assert wrong_key_statements  # both read the account afresh
