"""``dnc.service``: the rules both the API and the CLI use, on each backend."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from dialbase.accounts.service import get_account
from dialbase.db import session_scope, utcnow
from dialbase.dnc import service
from dialbase.errors import Invalid, NotFound
from tests.dnc.helpers import acme, add_raw_entry, minutes_ago


async def _put(sessions, number: str, **options):  # type: ignore[no-untyped-def]
    async with session_scope(sessions) as session:
        account = await get_account(session, "acme")
        entry, created = await service.put_entry(session, account, number, **options)
        return entry.number, created


async def _import(sessions, numbers, **options):  # type: ignore[no-untyped-def]
    async with session_scope(sessions) as session:
        account = await get_account(session, "acme")
        return await service.import_numbers(session, account, numbers, **options)


async def _listed(sessions) -> list[str]:  # type: ignore[no-untyped-def]
    async with session_scope(sessions, read_only=True) as session:
        account = await get_account(session, "acme")
        return [entry.number async for entry in service.iter_entries(session, account.id)]


async def test_an_import_counts_added_already_listed_and_invalid(sessionmaker, monkeypatch):
    monkeypatch.setattr(service, "IMPORT_CHUNK", 3)  # duplicates across chunks too
    await acme(sessionmaker, country="IN")
    await add_raw_entry(sessionmaker, "+919876500001")
    await add_raw_entry(sessionmaker, "+919876500002", expires_at=minutes_ago(5))
    refused: list[str] = []
    numbers = [
        "9876500001",  # listed before
        "09876500002",  # expired: listed anew
        "+919876500003",
        "abc",
        "9876500003",  # the same number, spelt another way
        "",
        "9876500004",
        "+919876500004",
        "12",
    ]
    counts = await _import(sessionmaker, iter(numbers), on_invalid=refused.append)
    assert counts == service.ImportCounts(added=3, already_listed=3, invalid=3)
    assert refused == ["abc", "", "12"]
    assert await _listed(sessionmaker) == [f"+91987650000{n}" for n in (1, 2, 3, 4)]


async def test_an_import_gives_its_note_to_the_numbers_it_lists(sessionmaker):
    await acme(sessionmaker)
    await _import(sessionmaker, ["+919876500001"], note="from the CRM")
    async with session_scope(sessionmaker, read_only=True) as session:
        account = await get_account(session, "acme")
        entry = await service.get_entry(session, account, "+919876500001")
    assert (entry.note, entry.expires_at) == ("from the CRM", None)


async def test_concurrent_puts_of_one_new_number_create_it_once(sessionmaker):
    await acme(sessionmaker)
    results = await asyncio.gather(*(_put(sessionmaker, "+919876500001") for _ in range(5)))
    assert sorted(created for _, created in results) == [False] * 4 + [True]
    assert await _listed(sessionmaker) == ["+919876500001"]


async def test_an_expiry_is_stored_as_utc(sessionmaker):
    await acme(sessionmaker)
    later = (utcnow() + timedelta(days=2)).replace(microsecond=0)
    await _put(sessionmaker, "+919876500001", expires_at=later)
    async with session_scope(sessionmaker, read_only=True) as session:
        account = await get_account(session, "acme")
        entry = await service.get_entry(session, account, "+919876500001")
    assert entry.expires_at == later and entry.expires_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("number", "options", "words"),
    [
        ("12", {}, "not a phone number"),
        ("+919876500001", {"expires_at": minutes_ago(1)}, "in the future"),
        ("+919876500001", {"expires_at": utcnow().replace(tzinfo=None)}, "UTC offset"),
        ("+919876500001", {"note": "x" * 1001}, "1000 characters"),
    ],
)
async def test_put_refuses_bad_values_with_invalid(sessionmaker, number, options, words):
    await acme(sessionmaker)
    with pytest.raises(Invalid, match=words):
        await _put(sessionmaker, number, **options)
    assert await _listed(sessionmaker) == []


async def test_get_of_a_number_not_listed_raises_not_found(sessionmaker):
    await acme(sessionmaker)
    async with session_scope(sessionmaker, read_only=True) as session:
        account = await get_account(session, "acme")
        with pytest.raises(NotFound, match="not on the do-not-call list"):
            await service.get_entry(session, account, "+919876500001")


async def test_a_page_limit_outside_1_to_1000_is_invalid(sessionmaker):
    await acme(sessionmaker)
    async with session_scope(sessionmaker, read_only=True) as session:
        account = await get_account(session, "acme")
        for limit in (0, 1001):
            with pytest.raises(Invalid, match="limit"):
                await service.list_page(session, account.id, None, limit)
