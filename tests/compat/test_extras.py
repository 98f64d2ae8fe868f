"""Contract inputs, "every other key is an extra mapped column": stored as text, exported."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compat.helpers import answer, updated
from tests.factories import all_leads

pytestmark = pytest.mark.usefixtures("acme")

SUCCESS = updated("Progressive")
NAME = "Zoë Ñúñez 山田"
SENT = {
    "address": "12 Rue de l'Église",
    "city": "Pune",
    "Email": "zoe@example.com",
    "order number": 12345,
    "vip": True,
    "notes": None,
    "balance": 10.5,
    "tags": ["a", "b"],
    "meta": {"k": "v"},
    "Straße": "Ünïcödé 山田",
}
STORED = {
    "address": "12 Rue de l'Église",
    "city": "Pune",
    "Email": "zoe@example.com",
    "order number": "12345",
    "vip": "true",
    "notes": "",
    "balance": "10.5",
    "tags": '["a","b"]',
    "meta": '{"k":"v"}',
    "Straße": "Ünïcödé 山田",
}


async def test_extra_columns_are_stored_as_text(client, sessionmaker):
    """Contract inputs: extra keys are stored with the lead as text, names as sent.

    Text as sent, null as empty, other JSON values as their compact JSON (project choice).
    """
    assert await answer(client, Name=NAME, **SENT) == SUCCESS
    [lead] = await all_leads(sessionmaker)
    assert lead.extra == STORED
    assert lead.name == NAME


def _dialbase() -> str:
    return str(Path(sys.executable).parent / "dialbase")


async def _export(database_url: str, fmt: str) -> str:
    command = [_dialbase(), "leads", "export", "--username", "acme", "--campaign", "Sales"]
    command += ["--format", fmt, "--database-url", database_url]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, encoding="utf-8", env=env
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_extra_columns_round_trip_through_export(client, sessionmaker, settings):
    """Contract "stored ... with its extra columns": the CLI export gives them back (JSON, CSV)."""
    assert await answer(client, Name=NAME, **SENT) == SUCCESS
    [row] = json.loads(await _export(settings.database_url, "json"))
    assert (row["phoneNumber"], row["name"], row["extra"]) == ("9876543210", NAME, STORED)
    [line] = csv.DictReader(io.StringIO(await _export(settings.database_url, "csv")))
    assert (line["phoneNumber"], line["name"]) == ("9876543210", NAME)
    assert json.loads(line["extra"]) == STORED


async def test_documented_keys_are_not_extra_columns(client, sessionmaker):
    """Contract inputs: documented keys, in any case, never land in the extra columns."""
    fields = {"NAME": "Asha", "Priority": 3, "ACTION": "x", "agentid": "A1", "SKILL": "s"}
    await answer(client, checkduplicate="no", expirydate="2099-01-01", **fields)
    [lead] = await all_leads(sessionmaker)
    assert lead.extra == {}
    assert (lead.agent_id, lead.skill) == ("A1", "s")
