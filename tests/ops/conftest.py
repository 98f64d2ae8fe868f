"""The deployment tests' fixtures (real processes, fresh PostgreSQL databases, Redis
prefixes), and their report of a failing test's server output."""

from tests.deploy.conftest import (  # noqa: F401
    pg_url,
    pytest_runtest_makereport,
    redis_prefix,
    servers,
)
