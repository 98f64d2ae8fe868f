"""The real-process fixtures of tests/deploy (servers, a fresh PostgreSQL database)."""

from tests.deploy.conftest import pg_url, pytest_runtest_makereport, servers

__all__ = ["pg_url", "pytest_runtest_makereport", "servers"]
