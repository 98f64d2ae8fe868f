"""What a command may do to the schema of the database it is pointed at.

Reading commands never create or migrate anything; writing commands create the schema
only in a new SQLite file or a database without tables; only ``serve`` and
``db upgrade`` migrate an older schema.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dialbase.migrate import head_revision
from tests.cli.conftest import cli, migrate_to, one_line_error, pg_tables, sqlite_tables

READERS = [
    ["account", "show", "--username", "acme"],
    ["account", "list"],
    ["campaign", "show", "--username", "acme", "--name", "Sales"],
    ["campaign", "list", "--username", "acme"],
    ["campaign", "stats", "--username", "acme", "--name", "Sales"],
    ["leads", "export", "--username", "acme", "--campaign", "Sales"],
]
READER_IDS = [" ".join(args[:2]) for args in READERS]
CREATE = ["account", "create", "--username", "acme", "--api-key", "acme-secret-key"]


@pytest.mark.parametrize("args", READERS, ids=READER_IDS)
def test_a_reading_command_on_a_missing_sqlite_file_creates_nothing(tmp_path: Path, args):
    path = tmp_path / "absent.db"
    result = cli(*args, "--database-url", f"sqlite:///{path}")
    assert result.exit_code == 1
    assert "`dialbase db upgrade`" in one_line_error(result)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", READERS, ids=READER_IDS)
def test_a_reading_command_on_a_sqlite_file_without_our_schema_creates_no_table(
    tmp_path: Path, args
):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER)")
    result = cli(*args, "--database-url", f"sqlite:///{path}")
    assert result.exit_code == 1
    assert "has no dialbase schema" in one_line_error(result)
    assert "`dialbase db upgrade`" in result.stderr
    assert sqlite_tables(path) == {"notes"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_a_writing_command_creates_the_schema_in_a_new_sqlite_file_and_says_so(tmp_path):
    path = tmp_path / "new.db"
    url = f"sqlite:///{path}"
    result = cli(*CREATE, "--database-url", url)
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == (
        f"created dialbase's schema (revision {head_revision()}) in {url}"
    )
    assert {"accounts", "campaigns", "leads", "alembic_version"} <= sqlite_tables(path)
    update = ["account", "update", "--username", "acme", "--rate-limit", "5"]
    again = cli(*update, "--database-url", url)
    assert again.exit_code == 0 and again.stderr == ""


def test_a_writing_command_refuses_a_database_holding_other_tables(tmp_path: Path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER)")
    result = cli(*CREATE, "--database-url", f"sqlite:///{path}")
    assert result.exit_code == 1 and "`dialbase db upgrade`" in one_line_error(result)
    assert sqlite_tables(path) == {"notes"}


def test_only_db_upgrade_migrates_an_older_schema(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate_to(url, "0001")
    for args in (CREATE, READERS[1]):
        refused = cli(*args, "--database-url", url)
        assert refused.exit_code == 1
        line = one_line_error(refused)
        assert "revision 0001" in line and "`dialbase db upgrade`" in line
    assert _version(tmp_path / "old.db") == "0001"
    done = cli("db", "upgrade", "--database-url", url)
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == f"migrated from 0001 to {head_revision()} in {url}"
    assert cli(*CREATE, "--database-url", url).exit_code == 0


def test_db_upgrade_says_what_it_did(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    head = head_revision()
    first = cli("db", "upgrade", "--database-url", url)
    assert first.stdout.strip() == f"created dialbase's schema (revision {head}) in {url}"
    second = cli("db", "upgrade", "--database-url", url)
    assert second.stdout.strip() == f"up to date at {head} in {url}"


def test_a_database_newer_than_this_dialbase_is_refused(tmp_path: Path):
    path = tmp_path / "new.db"
    url = f"sqlite:///{path}"
    assert cli("db", "upgrade", "--database-url", url).exit_code == 0
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    result = cli(*READERS[1], "--database-url", url)
    assert result.exit_code == 1 and "9999" in one_line_error(result)


def _version(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])


@pytest.mark.parametrize("args", READERS, ids=READER_IDS)
def test_a_reading_command_on_postgres_without_our_schema_creates_no_table(
    empty_postgres: str, args
):
    result = cli(*args, "--database-url", empty_postgres)
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "has no dialbase schema" in line and "`dialbase db upgrade`" in line
    assert pg_tables(empty_postgres) == set()


def test_a_writing_command_creates_the_schema_in_an_empty_postgres_database(empty_postgres):
    result = cli(*CREATE, "--database-url", empty_postgres)
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("created dialbase's schema")
    assert {"accounts", "alembic_version"} <= pg_tables(empty_postgres)
    shown = cli("account", "show", "--username", "acme", "--database-url", empty_postgres)
    assert shown.exit_code == 0 and "acme" in shown.stdout


def test_an_older_postgres_schema_is_migrated_only_by_db_upgrade(empty_postgres: str):
    migrate_to(empty_postgres, "0001")
    refused = cli(*CREATE, "--database-url", empty_postgres)
    assert refused.exit_code == 1 and "`dialbase db upgrade`" in one_line_error(refused)
    done = cli("db", "upgrade", "--database-url", empty_postgres)
    assert done.exit_code == 0 and "migrated from 0001 to" in done.stdout
