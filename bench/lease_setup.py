#!/usr/bin/env python3
"""Set up the lease benchmark's database with the dialbase of the Python running this.

    PYTHON bench/lease_setup.py URL --retry-delay 1 --max-attempts 3 [--calling-hours TEXT]

Migrates the database at URL and creates, through dialbase's services, the account
``bench000`` and its running Progressive campaign ``Bench``; prints one JSON line:
``{"campaign_id": ..., "timezone": ..., "calling_hours": ...}``. ``bench/lease.py`` runs it
with its own venv's Python, or with a baseline checkout's (``--baseline``), so that each
server gets a schema its own code migrated. Only the imports below are dialbase's;
``calling_hours`` needs a dialbase that has calling hours.
"""

import argparse
import asyncio
import json

USER, CAMPAIGN, API_KEY = "bench000", "Bench", "benchkey123"
ACCOUNT_LIMIT = 100_000_000  # requests a minute: counted, never reached


async def setup(url: str, retry_delay: int, max_attempts: int, hours: str | None) -> dict:
    from dialbase.accounts.service import create_account
    from dialbase.campaigns.service import create_campaign, set_running, update_campaign
    from dialbase.config import Settings
    from dialbase.db import create_engine, make_sessionmaker, session_scope
    from dialbase.migrate import upgrade

    settings = {"max_attempts": max_attempts, "retry_delay": retry_delay}
    if hours is not None:
        settings["calling_hours"] = hours
    engine = create_engine(Settings(database_url=url))
    try:
        await upgrade(engine)
        async with session_scope(make_sessionmaker(engine)) as session:
            account, _ = await create_account(
                session, USER, api_key=API_KEY, rate_limit=ACCOUNT_LIMIT
            )
            await create_campaign(session, USER, CAMPAIGN, dial_type="Progressive")
            campaign = await update_campaign(session, USER, CAMPAIGN, **settings)
            await set_running(session, campaign, True)
            return {
                "campaign_id": campaign.id,
                "timezone": account.timezone,
                "calling_hours": getattr(campaign, "calling_hours", None),
            }
    finally:
        await engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--retry-delay", type=int, required=True)
    ap.add_argument("--max-attempts", type=int, required=True)
    ap.add_argument("--calling-hours")
    args = ap.parse_args()
    found = asyncio.run(setup(args.url, args.retry_delay, args.max_attempts, args.calling_hours))
    print(json.dumps(found))


if __name__ == "__main__":
    main()
