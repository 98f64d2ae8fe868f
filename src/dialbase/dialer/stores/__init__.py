"""The queue stores of each backend (rules in ``dialer.leasing``), and what both say when
an outcome comes for a lease whose lead was deleted (``compat.deletion``)."""

from __future__ import annotations

from dialbase.dialer.leasing import Refused

DELETED = "deleted"


def lead_deleted(lease_id: str) -> Refused:
    """HTTP 409: the lease's lead was deleted; nothing is recorded or moved."""
    return Refused(
        409,
        f"lease {lease_id!r}: its lead was deleted, so the outcome was not recorded"
        " (the lease still counts as an attempt)",
    )
