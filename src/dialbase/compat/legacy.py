"""The older add endpoint (``.../CloudAgentAPI/addCamapaignData``): its parameters and answers.

No web framework here. ``parameters`` merges the three places a parameter can come from
(path segments, then the form body, then the query string: the first wins), with names
matched in any letter case and empty values left out. ``render`` writes an answer in the
requested format: XML by default, JSON with ``format=json`` or the ``.json`` method
segment. The checks and the write are ``compat.service``'s, in this endpoint's words
(``answers.LEGACY``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson

from dialbase.accounts.models import AuthMode
from dialbase.compat import answers, fields
from dialbase.compat.answers import Answer
from dialbase.compat.auth import FamilyAuth, rate_limited
from dialbase.compat.directory import AccountInfo, CampaignInfo
from dialbase.compat.service import LeadIntake, Wording
from dialbase.dnc.service import DncLists
from dialbase.leads.batch import ActionResult
from dialbase.leads.writer import GroupCommitWriter

JSON_TYPE = b"application/json"
XML_TYPE = b"application/xml"
XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'

# Lower-cased parameter name -> the canonical field ``compat.service`` reads.
DOCUMENTED = {
    "api_key": "apikey",
    "campaign_name": "campaignname",
    "phonenumber": "phonenumber",
    "name": "name",
    "action": "action",
    "checkduplicate": "checkduplicate",
    "priority": "priority",
    "expirydate": "expirydate",
    "agentid": "agentid",
    "skill": "skill",
    "format": "format",
}


class NotThisEndpoint(Exception):
    """The path names another method than addCamapaignData (``addCamapaignDataX``)."""


@dataclass(frozen=True, slots=True)
class Target:
    """What the path says: its key/value segments and the format its method segment asks."""

    segments: list[tuple[str, str]]
    extension: str | None  # "json", "xml" or None


def target(tail: str) -> Target:
    """Read the raw (still percent-encoded) path after ``.../addCamapaignData``:
    ``[.json|.xml][/key/value]...``. A key without a value is empty (absent)."""
    method, _, rest = tail.partition("/")
    extension = method.removeprefix(".").lower() if method else ""
    if (method and not method.startswith(".")) or extension not in ("", "json", "xml"):
        raise NotThisEndpoint(method)
    values = [unquote(part, errors="strict") for part in rest.split("/")] if rest else []
    if len(values) % 2 and values[-1] == "":  # a trailing slash
        values.pop()
    pairs = [
        (values[i], values[i + 1] if i + 1 < len(values) else "") for i in range(0, len(values), 2)
    ]
    return Target(pairs, extension or None)


def parameters(*sources: Iterable[tuple[str, str]]) -> dict[str, str]:
    """One mapping of every parameter, the earlier source winning (path, form, query).

    Names match in any letter case (``AgentID`` is ``agentId``): of one name, only the
    first spelling found is kept, as sent. An empty value counts as absent: forms send
    empty fields.
    """
    merged: dict[str, str] = {}
    seen: set[str] = set()
    for source in sources:
        for name, value in source:
            if value == "":
                continue
            lowered = name.lower()
            if lowered not in seen:
                seen.add(lowered)
                merged[name] = value
    return merged


def split(values: dict[str, str], limits: fields.Limits) -> fields.Body:
    """Documented fields and extra columns, under AddCampaignData's limits (``fields``).
    Raises ``fields.FieldLimitError`` (413) and ``fields.FieldValueError`` (400)."""
    return fields.split_body(values, limits, documented=DOCUMENTED)


def wants_json(values: Iterable[tuple[str, str]], extension: str | None) -> bool:
    """The ``format`` parameter (the first found) decides, then the method segment's
    extension; XML otherwise."""
    for name, value in values:
        if name.lower() == "format" and value:
            return value.strip().lower() == "json"
    return extension == "json"


def render(answer: Answer, as_json: bool) -> tuple[bytes, bytes]:
    """The answer's body and content type in the requested format."""
    if as_json:
        return orjson.dumps(answer.body), JSON_TYPE
    return xml(answer.body).encode(), XML_TYPE


def xml(body: dict[str, Any]) -> str:
    """``<xml>`` with one element per key, text escaped; ``null`` is an empty element."""
    inner = "".join(
        f"<{key}/>" if value is None else f"<{key}>{_escape(str(value))}</{key}>"
        for key, value in body.items()
    )
    return f"{XML_DECLARATION}<xml>{inner}</xml>\n"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class LegacyAddCampaignData:
    """The older add endpoint: the key alone names the account, then AddCampaignData's
    checks and write in this endpoint's words, under AddCampaignData's budgets."""

    def __init__(self, auth: FamilyAuth, writer: GroupCommitWriter, dnc: DncLists) -> None:
        self.auth = auth
        self.intake = LeadIntake(auth.directory, writer, dnc, LEGACY)

    async def handle(self, body: fields.Body, address: str) -> Answer:
        identify = functools.partial(self._identify, body.fields.get("apikey"), address)
        identified = await identify()
        if isinstance(identified, Answer):  # checks 1 and 2
            return identified
        account = identified
        retry_after = await self.auth.limiter.hit_account(account.id, account.rate_limit)
        if retry_after:
            return rate_limited(retry_after)
        return await self.intake.add(body, account, identify)  # checks 3 to 12

    async def _identify(self, key: Any, address: str) -> AccountInfo | Answer:
        """Check 1 (counted against the address when it fails) and check 2, the account's
        auth mode read afresh before it refuses (it may have just changed)."""
        if fields.is_blank(key):
            return await self.auth.refused(address, answers.LEGACY_NO_USER)
        account = await self.auth.account_by_key(key)
        if account is not None and account.auth_mode != AuthMode.BASIC_AUTH:
            await self.auth.directory.refresh()
            account = await self.auth.account_by_key(key)
        if account is None:
            return await self.auth.refused(address, answers.LEGACY_NO_USER)
        if account.auth_mode != AuthMode.BASIC_AUTH:
            return Answer(answers.LEGACY_NOT_BASIC_AUTH)
        return account


def _duplicate(campaign: CampaignInfo) -> answers.Body:
    return answers.LEGACY_DUPLICATE


def _success(
    campaign: CampaignInfo, action: str | None, result: ActionResult | None
) -> answers.Body:
    if result in (ActionResult.STARTED, ActionResult.ALREADY_STARTED):
        return answers.legacy_started(campaign.dial_type)
    if result is ActionResult.STOPPED:
        return answers.legacy_stopped(campaign.dial_type)
    return answers.LEGACY_UPDATED


LEGACY = Wording(
    campaign_missing=answers.LEGACY_CAMPAIGN,  # check 3
    campaign_unknown=answers.LEGACY_CAMPAIGN,  # check 3
    not_outbound=answers.LEGACY_NOT_OUTBOUND,  # check 4
    phone_missing=answers.LEGACY_PHONE_MISSING,  # check 5
    phone_invalid=answers.LEGACY_PHONE_INVALID,  # check 6
    do_not_call=answers.LEGACY_DND,  # check 7
    bad_priority=answers.LEGACY_PRIORITY,  # check 8
    bad_date=answers.LEGACY_DATE,  # check 9
    past_date=answers.LEGACY_PAST_DATE,  # check 10
    agent_missing=answers.LEGACY_AGENT_MISSING,  # check 11
    agent_unmapped=answers.LEGACY_AGENT_UNMAPPED,  # check 11
    bad_skill=answers.LEGACY_SKILL,  # check 11
    duplicate=_duplicate,  # check 12
    success=_success,
)
