"""The import runner: claims queued imports and those whose lease lapsed (a killed
worker's), leaves a live lease alone, and finishes what it claims."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from dialbase.db import session_scope
from dialbase.imports.models import Import
from dialbase.imports.runner import ImportRunner, sweep_uploads
from tests.imports.support import Acme, acme, numbers, queue, record, sessions

__all__ = ["acme", "sessions"]  # fixtures


async def _hold(sessions, import_id: int, until: datetime) -> None:  # type: ignore[no-untyped-def]
    async with session_scope(sessions) as session:
        await session.execute(
            update(Import)
            .where(Import.id == import_id)
            .values(status="running", claimed_by="another-worker", claimed_until=until)
        )


async def test_a_live_lease_is_left_alone_and_a_lapsed_one_taken_over(
    sessions, acme: Acme, settings
):
    import_id = await queue(
        sessions, acme, ["PhoneNumber"], [[f"+9198100{i:05d}"] for i in range(5)]
    )
    await _hold(sessions, import_id, datetime.now(UTC) + timedelta(minutes=5))
    runner = ImportRunner(sessions, settings, poll=0.05)
    assert await runner.import_step() is False
    await _hold(sessions, import_id, datetime.now(UTC) - timedelta(seconds=1))
    assert await runner.import_step() is True
    done = await record(sessions, import_id)
    assert (done.status, done.added) == ("done", 5)
    await runner.close()


async def test_a_started_runner_adds_queued_imports(sessions, acme: Acme, settings):
    runner = ImportRunner(sessions, settings, poll=0.05)
    runner.start()
    try:
        first = await queue(sessions, acme, ["PhoneNumber"], [["+919810000001"]])
        second = await queue(sessions, acme, ["PhoneNumber"], [["+919810000002"]])
        for _ in range(200):
            if (await record(sessions, second)).status == "done":
                break
            await asyncio.sleep(0.05)
        assert (await record(sessions, first)).status == "done"
        assert await numbers(sessions, acme.campaigns["Sales"]) == [
            "+919810000001",
            "+919810000002",
        ]
    finally:
        await runner.close()


async def test_files_a_killed_process_left_in_the_upload_folder_are_swept(
    sessions, acme: Acme, settings, tmp_path: Path
):
    """Old files of no import still to run are deleted; a queued import's file, a done
    import's leftover and a file being written (recent) are told apart."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    cut_short = folder / "a.part"  # an upload cut short by a kill, an hour ago
    queued_file = folder / "b.csv"  # the file of an import still to run
    recent = folder / "c.part"  # an upload being received now
    for path in (cut_short, queued_file, recent):
        path.write_text("PhoneNumber\n+919810000001\n")
    an_hour_ago = time.time() - 3700
    for path in (cut_short, queued_file):
        os.utime(path, (an_hour_ago, an_hour_ago))
    import_id = await queue(sessions, acme, ["PhoneNumber"], [])
    async with session_scope(sessions) as session:
        await session.execute(
            update(Import)
            .where(Import.id == import_id)
            .values(file_path=str(queued_file), file_format="csv")
        )
    assert await sweep_uploads(sessions, folder, 3600) == 1
    assert sorted(p.name for p in folder.iterdir()) == ["b.csv", "c.part"]
    assert await sweep_uploads(sessions, tmp_path / "missing", 3600) == 0
