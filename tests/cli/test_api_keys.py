"""API keys are unique across accounts: the older add endpoint names an account by its key
alone, so creating an account with, or rotating to, a key another account has is refused
(a clear one-line error, exit code 1, nothing changed)."""

from __future__ import annotations

import asyncio
import json

import pytest

from dialbase.accounts.service import (
    authenticate,
    create_account,
    list_accounts,
    rotate_api_key,
    update_account,
)
from dialbase.db import session_scope
from dialbase.errors import Conflict
from tests.cli.conftest import cli, one_line_error
from tests.factories import make_account

KEY = "shared-secret-key"
TAKEN = (
    "error: that API key is already used by another account: choose another one,"
    " or leave it out to have one generated"
)


def _accounts(url: str) -> dict[str, dict[str, object]]:
    listed = json.loads(cli("account", "list", "--json", "--database-url", url).stdout)
    return {account["username"]: account for account in listed}


def _authenticates(url: str, username: str, key: str) -> bool:
    """Whether ``key`` is ``username``'s key (asked through the service the API uses)."""
    from dialbase.config import Settings
    from dialbase.db import create_engine, make_sessionmaker

    async def main() -> bool:
        engine = create_engine(Settings(database_url=url))
        try:
            async with session_scope(make_sessionmaker(engine), read_only=True) as session:
                return await authenticate(session, username, key) is not None
        finally:
            await engine.dispose()

    return asyncio.run(main())


def test_creating_an_account_with_a_key_another_account_has_is_refused(backend):
    url = backend.database_url
    made = cli("account", "create", "--username", "acme", "--api-key", KEY, "--database-url", url)
    assert made.exit_code == 0, made.output
    before = _accounts(url)

    again = cli("account", "create", "--username", "beta", "--api-key", KEY, "--database-url", url)

    assert again.exit_code == 1
    assert one_line_error(again) == TAKEN
    assert again.stdout == ""
    assert _accounts(url) == before  # no account "beta"
    assert _authenticates(url, "acme", KEY)


def test_rotating_to_a_key_another_account_has_is_refused_and_keeps_the_old_key(backend):
    url = backend.database_url
    db = ("--database-url", url)
    assert cli("account", "create", "--username", "acme", "--api-key", KEY, *db).exit_code == 0
    own = "beta-own-secret"
    assert cli("account", "create", "--username", "beta", "--api-key", own, *db).exit_code == 0
    before = _accounts(url)

    rotated = cli("account", "rotate-key", "--username", "beta", "--api-key", KEY, *db)

    assert rotated.exit_code == 1
    assert one_line_error(rotated) == TAKEN
    assert rotated.stdout == ""
    assert _accounts(url) == before
    assert _authenticates(url, "beta", own)
    assert not _authenticates(url, "beta", KEY)
    assert _authenticates(url, "acme", KEY)


def test_rotating_to_the_accounts_own_key_again_is_allowed(backend):
    url = backend.database_url
    db = ("--database-url", url)
    assert cli("account", "create", "--username", "acme", "--api-key", KEY, *db).exit_code == 0
    rotated = cli("account", "rotate-key", "--username", "acme", "--api-key", KEY, *db)
    assert rotated.exit_code == 0, rotated.output
    assert rotated.stdout.splitlines()[-1] == KEY
    assert _authenticates(url, "acme", KEY)


def test_a_taken_user_name_is_still_named_as_such_whatever_the_key(backend):
    url = backend.database_url
    db = ("--database-url", url)
    assert cli("account", "create", "--username", "acme", "--api-key", KEY, *db).exit_code == 0
    for key in (KEY, "another-secret-key"):
        again = cli("account", "create", "--username", "acme", "--api-key", key, *db)
        assert again.exit_code == 1
        assert one_line_error(again) == "error: an account named 'acme' already exists"


def test_generated_keys_are_unique_and_a_later_account_may_not_take_one(backend):
    url = backend.database_url
    db = ("--database-url", url)
    made = [cli("account", "create", "--username", f"user{i}", *db) for i in range(3)]
    keys = [result.stdout.splitlines()[-1] for result in made]
    assert all(result.exit_code == 0 for result in made)
    assert len(set(keys)) == 3
    taken = cli("account", "create", "--username", "late", "--api-key", keys[1], *db)
    assert taken.exit_code == 1 and one_line_error(taken) == TAKEN


async def test_the_service_raises_conflict_for_a_key_in_use(sessionmaker):
    await make_account(sessionmaker, "acme", KEY)
    await make_account(sessionmaker, "beta", "beta-own-secret")
    message = (
        "that API key is already used by another account: choose another one,"
        " or leave it out to have one generated"
    )
    with pytest.raises(Conflict) as created:
        async with session_scope(sessionmaker) as session:
            await create_account(session, "gamma", api_key=KEY)
    assert created.value.message == message
    with pytest.raises(Conflict) as rotated:
        async with session_scope(sessionmaker) as session:
            await rotate_api_key(session, "beta", api_key=KEY)
    assert rotated.value.message == message
    with pytest.raises(Conflict) as updated:
        async with session_scope(sessionmaker) as session:
            await update_account(session, "beta", api_key=KEY)
    assert updated.value.message == message
    async with session_scope(sessionmaker, read_only=True) as session:
        assert [a.username for a in await list_accounts(session)] == ["acme", "beta"]
        assert await authenticate(session, "beta", "beta-own-secret") is not None


async def test_two_accounts_created_at_once_with_one_key_get_one_account(sessionmaker):
    """Both checks may pass before either writes: the unique index decides, and the loser
    gets the same Conflict."""

    async def create(name: str) -> str:
        try:
            async with session_scope(sessionmaker) as session:
                await create_account(session, name, api_key=KEY)
        except Conflict as exc:
            return exc.message
        return "created"

    outcomes = await asyncio.gather(*(create(f"user{i}") for i in range(4)))
    assert sorted(outcomes) == ["created"] + [TAKEN.removeprefix("error: ")] * 3
    async with session_scope(sessionmaker, read_only=True) as session:
        assert len(await list_accounts(session)) == 1
