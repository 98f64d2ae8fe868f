"""The rules of one imported row: pure functions, no I/O.

A row is read through the import's columns (the bulk request's ``map`` or a file's header
row), matched case-insensitively: ``PhoneNumber``, ``Name``, ``Priority``, ``ExpiryDate``,
``AgentId`` and ``skill`` are the lead's fields, any other column an extra column. A
blank cell (null, empty or spaces) counts as its column being absent for that row. Then,
in this order, the first rule that fails rejects the row with its message:

1. more cells than columns (files only: a bulk request's route refuses such a request),
   unless the surplus cells are blank: ``Row has more values than columns``;
2. the row's values together exceed 2,000 characters: ``Row exceeds 2000 characters``;
3. a value no database can store or over the extra-column limits (``compat.fields``);
4. AddCampaignData's checks 8, 8b (do-not-call, looked up by the caller) and 9 to 14
   with AddCampaignData's messages (``compat.service.check_lead``).

A row that passes is a ``Candidate``; the duplicate rule and the write are the engine's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dialbase.compat import answers, fields
from dialbase.compat.directory import AccountInfo, CampaignInfo
from dialbase.compat.service import ADD_CAMPAIGN_DATA, Later, Rejected, check_lead
from dialbase.leads.batch import NewLead

# Lower-cased column -> the field AddCampaignData reads. Everything else is extra.
ROW_FIELDS = {
    "phonenumber": "phonenumber",
    "name": "name",
    "priority": "priority",
    "expirydate": "expirydate",
    "agentid": "agentid",
    "skill": "skill",
}
MAX_ROW_CHARS = 2000
ROW_TOO_LONG = "Row exceeds 2000 characters"
TOO_MANY_CELLS = "Row has more values than columns"
DUPLICATE = "Number Already Exist"
DND = answers.DND_NUMBER["message"]  # check 8b


@dataclass(frozen=True, slots=True)
class Refused:
    message: str


@dataclass(frozen=True, slots=True)
class Candidate:
    lead: NewLead


@dataclass(frozen=True, slots=True)
class Unless:
    """Refused by a check after 8b, unless the number is on the do-not-call list (8b)."""

    message: str
    phone_e164: str


@dataclass(frozen=True, slots=True)
class Listed:
    """Passed checks 8 to 14; refused if its number is on the do-not-call list."""

    lead: NewLead


Verdict = Refused | Unless | Listed


def is_blank_cell(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def has_phone_column(columns: list[str]) -> bool:
    return any(isinstance(c, str) and c.lower() == "phonenumber" for c in columns)


def phone_text(columns: list[str], cells: list[Any]) -> str | None:
    """The row's phone number cell as sent (text), for its result."""
    for column, cell in zip(columns, cells, strict=False):
        if column.lower() == "phonenumber" and not is_blank_cell(cell):
            text = fields.as_column_text(cell).strip()
            return text.replace("\x00", "\ufffd")[:64]
    return None


def judge(
    columns: list[str],
    cells: list[Any],
    account: AccountInfo,
    campaign: CampaignInfo,
    limits: fields.Limits,
) -> Verdict:
    """The row's verdict before the do-not-call lookup and the duplicate rule."""
    if len(cells) > len(columns) and not all(is_blank_cell(c) for c in cells[len(columns) :]):
        return Refused(TOO_MANY_CELLS)
    present = {
        column: cell
        for column, cell in zip(columns, cells, strict=False)
        if not is_blank_cell(cell)
    }
    if sum(len(fields.as_column_text(cell)) for cell in present.values()) > MAX_ROW_CHARS:
        return Refused(ROW_TOO_LONG)
    try:
        body = fields.split_body(present, limits, ROW_FIELDS)
    except (fields.FieldLimitError, fields.FieldValueError) as exc:
        return Refused(str(exc))
    checked = check_lead(body, account, campaign, ADD_CAMPAIGN_DATA)
    if isinstance(checked, Rejected):
        return Refused(checked.body["message"])
    if isinstance(checked, Later):
        return Unless(checked.rejected.body["message"], checked.phone_e164)
    return Listed(checked)


def phone_e164(verdict: Verdict) -> str | None:
    if isinstance(verdict, Unless):
        return verdict.phone_e164
    if isinstance(verdict, Listed):
        return verdict.lead.phone_e164
    return None
