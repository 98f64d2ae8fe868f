"""Do-not-call lists: one per account, of numbers in E.164 form (``phones.e164``).

An entry may carry an expiry (after which it no longer suppresses and is not listed) and
a note. The list is checked twice: when a lead is added (inside the write batch, see
``leads.batch``) and when the queue is about to hand a lead out (``dialer.leasing``); an
outcome ``do_not_call`` adds the number for good. No web framework here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialbase.db import utcnow
from dialbase.dnc.models import DncEntry


def in_force(now: datetime):  # type: ignore[no-untyped-def]
    """The condition of an entry that still counts at ``now``."""
    return or_(DncEntry.expires_at.is_(None), DncEntry.expires_at > now)


async def find_entry(session: AsyncSession, account_id: int, number: str) -> DncEntry | None:
    """The entry in force for the number (E.164 form), if any."""
    return await session.scalar(
        select(DncEntry).where(
            DncEntry.account_id == account_id, DncEntry.number == number, in_force(utcnow())
        )
    )


class DncLists:
    """Reads for the request paths (AddCampaignData checks a refused lead's number)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def listed(self, account_id: int, number: str) -> bool:
        async with self._sessionmaker() as session:
            return await find_entry(session, account_id, number) is not None
