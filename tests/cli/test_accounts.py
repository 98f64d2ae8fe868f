"""``account`` and ``campaign`` commands: rotate-key, list, the API key rule, --version."""

from __future__ import annotations

import asyncio
import json

import pytest

from dialbase import __version__
from tests.cli.conftest import cli, one_line_error
from tests.factories import body

KEY = "acme-secret-key"
URL = "/ca_apis/AddCampaignData"
INVALID_USER = {"status": "false", "message": "Invalid User Details", "data": None}


def _setup(url: str) -> None:
    db = ["--database-url", url]
    assert cli("account", "create", "--username", "acme", "--api-key", KEY, *db).exit_code == 0
    made = cli("campaign", "create", "--username", "acme", "--name", "Sales", "--dial-type",
               "Progressive", *db)  # fmt: skip
    assert made.exit_code == 0, made.output
    assert cli("campaign", "start", "--username", "acme", "--name", "Sales", *db).exit_code == 0


async def _add(client, key: str, phone: str, header: bool) -> dict[str, object]:  # type: ignore[no-untyped-def]
    fields = body(apiKey=None if header else key, phoneNumber=phone)
    fields = {k: v for k, v in fields.items() if v is not None}
    headers = {"apiKey": key} if header else None
    answer = await client.post(URL, json=fields, headers=headers)
    assert answer.status_code == 200
    return dict(answer.json())


@pytest.mark.parametrize("header", [False, True], ids=["key-in-body", "key-in-header"])
async def test_rotate_key_stops_the_old_key_at_once_on_a_running_server(
    backend, client, header: bool
):
    url = backend.database_url
    await asyncio.to_thread(_setup, url)
    assert (await _add(client, KEY, "9000000001", header))["status"] == "Success"

    rotated = await asyncio.to_thread(cli, "account", "rotate-key", "--username", "acme",
                                      "--database-url", url)  # fmt: skip
    assert rotated.exit_code == 0, rotated.output
    new_key = rotated.stdout.strip().splitlines()[-1]
    assert new_key != KEY and len(new_key) >= 32

    assert await _add(client, KEY, "9000000002", header) == INVALID_USER
    assert (await _add(client, new_key, "9000000003", header))["status"] == "Success"


def test_rotate_key_takes_a_given_key_and_prints_it_last(backend):
    url = backend.database_url
    _setup(url)
    given = "a-new-key-of-mine"
    done = cli("account", "rotate-key", "--username", "acme", "--api-key", given,
               "--database-url", url)  # fmt: skip
    assert done.exit_code == 0 and done.stdout.splitlines()[-1] == given
    missing = cli("account", "rotate-key", "--username", "nobody", "--database-url", url)
    assert missing.exit_code == 1 and "no account named 'nobody'" in one_line_error(missing)


@pytest.mark.parametrize(
    "key",
    ["naïve-key-1234", "key with space", "tab\tkey-1234", "ключ-ключ-ключ", "short"],
    ids=["non-ascii", "space", "control", "cyrillic", "too-short"],
)
def test_an_api_key_that_is_not_printable_ascii_is_refused(tmp_path, key: str):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    made = cli("account", "create", "--username", "acme", "--api-key", key, "--database-url", url)
    assert made.exit_code == 1 and "API key" in one_line_error(made)
    assert cli("account", "create", "--username", "acme", "--database-url", url).exit_code == 0
    rotated = cli("account", "rotate-key", "--username", "acme", "--api-key", key,
                  "--database-url", url)  # fmt: skip
    assert rotated.exit_code == 1 and "API key" in one_line_error(rotated)


def test_every_printable_ascii_character_is_allowed_in_a_key(tmp_path):
    key = "".join(chr(c) for c in range(0x21, 0x7F))
    url = f"sqlite:///{tmp_path / 'x.db'}"
    made = cli("account", "create", "--username", "acme", "--api-key", key, "--database-url", url)
    assert made.exit_code == 0 and made.stdout.splitlines()[-1] == key


def test_account_list_shows_every_account_as_a_table_or_json(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    empty_db = cli("db", "upgrade", "--database-url", url)
    assert empty_db.exit_code == 0
    assert cli("account", "list", "--database-url", url).stdout.strip() == "no account yet"
    for name in ("zeta", "acme"):
        assert cli("account", "create", "--username", name, "--database-url", url).exit_code == 0
    table = cli("account", "list", "--database-url", url).stdout.splitlines()
    assert table[0].split() == ["username", "authMode", "timezone", "rateLimit", "createdAt"]
    assert [line.split()[0] for line in table[1:]] == ["acme", "zeta"]
    listed = json.loads(cli("account", "list", "--json", "--database-url", url).stdout)
    assert [a["username"] for a in listed] == ["acme", "zeta"]
    assert all("apiKey" not in a for a in listed)


def test_campaign_list_shows_an_accounts_campaigns_with_lead_counts(backend):
    url = backend.database_url
    _setup(url)
    extra = ["--username", "acme", "--name", "Leads", "--dial-type", "Preview"]
    assert cli("campaign", "create", *extra, "--database-url", url).exit_code == 0
    table = cli("campaign", "list", "--username", "acme", "--database-url", url).stdout
    lines = table.splitlines()
    assert lines[0].split() == ["name", "dialType", "direction", "routing", "running", "leadCount"]
    rows = [line.split()[:2] for line in lines[1:]]
    assert rows == [["Leads", "Preview"], ["Sales", "Progressive"]]
    listed = json.loads(
        cli("campaign", "list", "--username", "acme", "--json", "--database-url", url).stdout
    )
    assert [(c["name"], c["running"], c["leadCount"]) for c in listed] == [
        ("Leads", False, 0),
        ("Sales", True, 0),
    ]
    missing = cli("campaign", "list", "--username", "nobody", "--database-url", url)
    assert missing.exit_code == 1 and "no account named 'nobody'" in one_line_error(missing)


def test_version_prints_the_package_version():
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout == f"dialbase {__version__}\n"
