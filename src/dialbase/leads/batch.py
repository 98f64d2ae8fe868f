"""What a write batch is, what can come of it, and the rule that decides each lead's fate.

A batch is the leads of concurrent AddCampaignData requests, written in one transaction
by a store (``leads.stores``). Inside that transaction, for each lead in arrival order:

1. the configuration revision is read; a lead checked against another revision than the
   database's (cached account or campaign data that changed since) is not written
   (``STALE``) and its request is checked again against fresh data;
2. a lead whose number (E.164 form) is on its account's do-not-call list is refused
   (``DO_NOT_CALL``);
3. the campaign's number guard (``campaign_numbers``, E.164 form) is inserted if missing;
   a lead with the duplicate check on whose number was already guarded is a
   ``DUPLICATE``;
4. every other lead is inserted (``STORED``), its zone key recorded for its campaign
   (``campaign_zones``), and its ``action`` starts or stops the campaign;
5. for a stored lead whose account has a webhook (``NewLead.webhooks``), its
   ``lead.added`` event (and ``campaign.started``/``stopped`` when its action changed the
   campaign) is written to the outbox (``webhooks.outbox``), when the campaign's webhook
   enables it.

The guard's primary key makes the duplicate check exact across processes and hosts. A
guard stands for the campaign's live leads of a number: deleting the last of them
(``compat.deletion``) deletes it, in the deletion's transaction, so the number counts as
new again.

A store's ``write`` ends in one of four ways, and the writer treats each differently:
- it returns one ``WriteResult`` per lead: the transaction committed;
- ``BatchRefused``: the database refused a statement, so the transaction rolled back and
  nothing is stored; the writer finds the lead at fault by writing the leads one by one;
- ``DatabaseUnavailable``: the database could not be used and nothing was committed;
- ``CommitUnknown``: the connection failed after the commit may have been sent. The
  batch is never written again blindly: the store looks its id up in ``write_batches``
  (written in the same transaction) and either returns the committed results or says
  that nothing was stored; if it cannot tell, every lead of the batch is answered 503
  with ``OUTCOME_UNKNOWN``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from dialbase.errors import ServiceUnavailable

OUTCOME_UNKNOWN = (
    "The database connection was lost while this lead was being committed; it may have"
    " been stored. Send it again with checkDuplicate=true to have it stored exactly once."
)
LEAD_REFUSED = "The database refused this lead; nothing was stored. The error is logged."


class Outcome(enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    DO_NOT_CALL = "do_not_call"
    STALE = "stale"


class ActionResult(enum.Enum):
    STARTED = "started"
    ALREADY_STARTED = "already_started"
    STOPPED = "stopped"


@dataclass(slots=True)
class NewLead:
    campaign_id: int
    revision: int  # the configuration revision its account and campaign were read at
    phone_number: str  # as sent
    name: str | None
    priority: int
    expires_at: datetime | None
    agent_id: str | None
    skill: str | None
    extra: dict[str, str]
    check_duplicate: bool
    action: str | None  # "start", "stop" or None (no action to apply)
    phone_e164: str  # compared by (``phones.e164``)
    time_zones: str  # the queue's zone key (``phones.lead_zones``)
    # The account has a webhook: the batch writes this lead's events (``lead.added``, and
    # the campaign event of its action) when its campaign's webhook enables them.
    webhooks: bool = False


@dataclass(slots=True)
class WriteResult:
    outcome: Outcome
    action: ActionResult | None = None
    revision: int = 0  # with STALE: the database's revision


class BatchRefused(Exception):
    """The database refused the batch's statement; the transaction rolled back."""


class CommitUnknown(Exception):
    """The connection failed once the commit may have been sent."""


class OutcomeUnknown(ServiceUnavailable):
    def __init__(self) -> None:
        super().__init__(OUTCOME_UNKNOWN)


def decide(lead: NewLead, revision: int, listed: bool, new_number: bool) -> WriteResult:
    """One lead's fate; ``listed`` says its number is on the do-not-call list and
    ``new_number`` that its guard insert added a row."""
    if lead.revision != revision:
        return WriteResult(Outcome.STALE, revision=revision)
    if listed:
        return WriteResult(Outcome.DO_NOT_CALL)
    if lead.check_duplicate and not new_number:
        return WriteResult(Outcome.DUPLICATE)
    return WriteResult(Outcome.STORED)


def action_result(lead: NewLead, changed: bool) -> ActionResult | None:
    """What a stored lead's action did; ``changed`` says the campaign's state changed."""
    if lead.action == "start":
        return ActionResult.STARTED if changed else ActionResult.ALREADY_STARTED
    if lead.action == "stop":
        return ActionResult.STOPPED
    return None


def stored_actions(
    batch: Sequence[NewLead], results: Sequence[WriteResult]
) -> list[tuple[NewLead, WriteResult]]:
    """The stored leads that carry an action, in campaign order (so that concurrent
    batches lock campaigns in the same order and never deadlock)."""
    pairs = [
        (lead, result)
        for lead, result in zip(batch, results, strict=True)
        if result.outcome is Outcome.STORED and lead.action
    ]
    return sorted(pairs, key=lambda pair: pair[0].campaign_id)
