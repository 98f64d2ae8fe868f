"""The accounts and campaigns most compat tests post to."""

from __future__ import annotations

import pytest

from tests.factories import make_account, make_campaign


@pytest.fixture
async def acme(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    """Account "acme" (UTC) with the general Progressive outbound campaign "Sales"."""
    await make_account(sessionmaker)
    await make_campaign(sessionmaker)


@pytest.fixture
async def routed(acme, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    """acme's agent-wise "Agents", skill-wise "Skills" and inbound "Inbound" campaigns."""
    await make_campaign(
        sessionmaker, "Agents", dial_type="Predictive", routing="agentwise", agents=["A100", "A200"]
    )
    await make_campaign(
        sessionmaker,
        "Skills",
        dial_type="Preview",
        routing="skillwise",
        skills=["english", "hindi"],
    )
    await make_campaign(sessionmaker, "Inbound", direction="inbound")
