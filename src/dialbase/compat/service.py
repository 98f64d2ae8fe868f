"""AddCampaignData and the older add endpoint: the checks after authentication, in their
order and each endpoint's words, then the group-commit write.

No web framework here. ``AddCampaignData.handle`` takes the parsed body, the credentials
of the headers and the client address, and returns an ``Answer`` (HTTP status, JSON body,
headers). The older add endpoint (``compat.legacy``) authenticates its own way and shares
the rest: ``LeadIntake`` runs the checks both have (campaign, direction, phone number,
do-not-call, priority, expiry, routing, duplicate) with the bodies of a ``Wording``.

The checks run against a worker's cache of accounts and campaigns (``Directory``). Each
attempt ends in one of three typed results:

- ``Answer``: the final answer (a success, a duplicate, a refusal by the rate limits);
- ``Rejected``: a check refused the request; before answering, the cache is refreshed
  and, if the settings moved, the request is checked again (a rejection never rests on
  out-of-date settings);
- ``Stale``: the write batch saw another configuration revision than the one the request
  was checked against, and stored nothing; the request is checked again.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dialbase import phones
from dialbase.campaigns.models import Direction, Routing
from dialbase.compat import answers, fields
from dialbase.compat.answers import Answer, Body
from dialbase.compat.auth import Credentials, FamilyAuth, rate_limited
from dialbase.compat.directory import AccountInfo, CampaignInfo, Directory
from dialbase.dnc.service import DncLists
from dialbase.errors import ServiceUnavailable
from dialbase.leads.batch import ActionResult, NewLead, Outcome
from dialbase.leads.writer import GroupCommitWriter

MAX_RECHECKS = 5
SETTINGS_MOVING = "The account's settings are changing too fast; try again."
# A rejection that depends on the request alone (once checks 3 to 7 passed) re-reads the
# settings before it is answered only if they were last read over this many seconds ago:
# a malformed request costs no query, and an answer follows a settings change within it.
CONTENT_ONLY_MAX_AGE = 1.0


@dataclass(frozen=True, slots=True)
class Rejected:
    body: answers.Body
    content_only: bool = False  # depends on the request alone (see CONTENT_ONLY_MAX_AGE)


@dataclass(frozen=True, slots=True)
class Stale:
    revision: int


Attempt = Answer | Rejected | Stale
# Authenticates the request again (after the settings moved): the account or the refusal.
Identify = Callable[[], Awaitable[AccountInfo | Answer]]


@dataclass(frozen=True, slots=True)
class Wording:
    """One add endpoint's bodies for the checks ``LeadIntake`` runs, in their order."""

    campaign_missing: Body
    campaign_unknown: Body
    not_outbound: Body
    phone_missing: Body
    phone_invalid: Body
    do_not_call: Body
    bad_priority: Body
    bad_date: Body
    past_date: Body
    agent_missing: Body
    agent_unmapped: Body
    bad_skill: Body
    duplicate: Callable[[CampaignInfo], Body]
    # The campaign, the request's action (``fields.action``) and what the write did.
    success: Callable[[CampaignInfo, str | None, ActionResult | None], Body]


class LeadIntake:
    """The checks after authentication and the write, retried while the settings move."""

    def __init__(
        self, directory: Directory, writer: GroupCommitWriter, dnc: DncLists, wording: Wording
    ) -> None:
        self.directory = directory
        self.writer = writer
        self.dnc = dnc
        self.wording = wording

    async def add(self, body: fields.Body, account: AccountInfo, identify: Identify) -> Answer:
        """Check and write the lead of an authenticated request (its budget counted)."""
        for _ in range(MAX_RECHECKS):
            attempt = await self._check_and_write(body, account)
            if isinstance(attempt, Answer):
                return attempt
            if isinstance(attempt, Stale):
                self.directory.saw_revision(attempt.revision)
            else:
                max_age = CONTENT_ONLY_MAX_AGE if attempt.content_only else 0.0
                if not await self.directory.refresh(max_age):
                    return Answer(attempt.body)
            # The account changed under the request: the answer is its refusal, if any.
            refreshed = await identify()
            if isinstance(refreshed, Answer):
                return refreshed
            account = refreshed
        raise ServiceUnavailable(SETTINGS_MOVING)

    async def _check_and_write(self, body: fields.Body, account: AccountInfo) -> Attempt:
        values = body.fields
        words = self.wording
        if fields.is_blank(values.get("campaignname")):
            return Rejected(words.campaign_missing, content_only=True)
        name = (fields.as_text(values["campaignname"]) or "").strip()
        campaign = await self.directory.campaign(account.id, name)
        if campaign is None:
            return Rejected(words.campaign_unknown)
        lead = _lead(body, account, campaign, words)
        if isinstance(lead, Later):  # the do-not-call check comes before the later ones
            if await self.dnc.listed(account.id, lead.phone_e164):
                return Rejected(words.do_not_call)
            return lead.rejected
        if isinstance(lead, Rejected):
            return lead
        lead.webhooks = account.has_webhooks  # read at the revision the batch checks
        result = await self.writer.submit(lead)
        if result.outcome is Outcome.STALE:
            return Stale(result.revision)
        if result.outcome is Outcome.DO_NOT_CALL:
            return Answer(words.do_not_call)
        if result.outcome is Outcome.DUPLICATE:
            return Answer(words.duplicate(campaign))
        return Answer(words.success(campaign, fields.action(values), result.action))


class AddCampaignData:
    def __init__(self, auth: FamilyAuth, writer: GroupCommitWriter, dnc: DncLists) -> None:
        self.auth = auth
        self.directory = auth.directory
        self.limiter = auth.limiter
        self.intake = LeadIntake(auth.directory, writer, dnc, ADD_CAMPAIGN_DATA)

    async def handle(self, body: fields.Body, credentials: Credentials, address: str) -> Answer:
        identify = functools.partial(
            self.auth.identify, body.fields, credentials, address, fresh=False
        )
        identified = await identify()
        if isinstance(identified, Answer):  # checks 1 to 4 (or the bearer checks)
            return identified
        account = identified
        retry_after = await self.limiter.hit_account(account.id, account.rate_limit)
        if retry_after:
            return rate_limited(retry_after)
        return await self.intake.add(body, account, identify)  # checks 5 to 16


@dataclass(frozen=True, slots=True)
class Later:
    """A check after 8b refused the request: the do-not-call check (8b) answers first."""

    rejected: Rejected
    phone_e164: str


def _lead(
    body: fields.Body, account: AccountInfo, campaign: CampaignInfo, words: Wording
) -> NewLead | Rejected | Later:
    """The checks from the campaign's direction on (do-not-call is the write batch's);
    the lead to write when they all pass."""
    values = body.fields
    if campaign.direction != Direction.OUTBOUND:
        return Rejected(words.not_outbound)
    if fields.is_blank(values.get("phonenumber")):
        return Rejected(words.phone_missing, content_only=True)
    phone = fields.phone_number(values["phonenumber"])
    if phone is None:
        return Rejected(words.phone_invalid, content_only=True)
    phone_e164, candidates = phones.normalized(phone, account.default_country)
    checked = _later_checks(values, account, campaign, words)
    if isinstance(checked, Rejected):
        return Later(checked, phone_e164)
    action = fields.action(values)
    return NewLead(
        campaign_id=campaign.id,
        # Leads checked against data of two revisions are stale whatever the database says.
        revision=account.revision if account.revision == campaign.revision else -1,
        phone_number=phone,
        name=_name(values.get("name")),
        priority=checked.priority,
        expires_at=checked.expires_at,
        agent_id=checked.agent_id,
        skill=checked.skill,
        extra=body.extra,
        check_duplicate=fields.check_duplicate(values.get("checkduplicate")),
        action=action if action in ("start", "stop") else None,
        phone_e164=phone_e164,
        time_zones=phones.lead_zones(phones.given_zone(body.extra), candidates, account.zone.key),
    )


@dataclass(frozen=True, slots=True)
class _Checked:
    priority: int
    expires_at: datetime | None
    agent_id: str | None
    skill: str | None


def _later_checks(
    values: dict[str, Any], account: AccountInfo, campaign: CampaignInfo, words: Wording
) -> _Checked | Rejected:
    """Priority, expiry and routing: the first that fails, or the values they read."""
    priority = 1
    if "priority" in values:
        parsed = fields.priority(values["priority"])
        if parsed is None:
            return Rejected(words.bad_priority, content_only=True)
        priority = parsed
    expires_at = None
    if "expirydate" in values:
        expires_at = fields.expiry(values["expirydate"], account.zone)
        if expires_at is None:
            return Rejected(words.bad_date, content_only=True)
        if expires_at <= datetime.now(UTC):
            return Rejected(words.past_date)
    agent = fields.optional_text(values.get("agentid"))
    skill = fields.optional_text(values.get("skill"))
    routing_error = _routing_error(campaign, agent, skill, words)
    if routing_error is not None:
        return Rejected(routing_error)
    return _Checked(priority, expires_at, agent, skill)


def _name(value: Any) -> str | None:
    if value is None:
        return None
    return fields.as_column_text(value).strip() or None


def _routing_error(
    campaign: CampaignInfo, agent: str | None, skill: str | None, words: Wording
) -> answers.Body | None:
    if campaign.routing == Routing.AGENTWISE:
        if agent is None:
            return words.agent_missing
        if agent not in campaign.agents:
            return words.agent_unmapped
    elif campaign.routing == Routing.SKILLWISE and (skill is None or skill not in campaign.skills):
        return words.bad_skill
    return None


def _duplicate(campaign: CampaignInfo) -> answers.Body:
    """Checks 15 and 16."""
    skillwise = campaign.routing == Routing.SKILLWISE
    return answers.DUPLICATE_SKILLWISE if skillwise else answers.DUPLICATE


def _success(
    campaign: CampaignInfo, action: str | None, result: ActionResult | None
) -> answers.Body:
    dial_type = campaign.dial_type
    if action is None:
        if campaign.routing in (Routing.AGENTWISE, Routing.SKILLWISE):
            return answers.UPDATED_ROUTED
        return answers.updated(dial_type)
    if result is ActionResult.STARTED:
        return answers.started(dial_type)
    if result is ActionResult.ALREADY_STARTED:
        return answers.already_started(campaign.name)
    if result is ActionResult.STOPPED:
        return answers.stopped(dial_type)
    return answers.invalid_action(dial_type)


ADD_CAMPAIGN_DATA = Wording(
    campaign_missing=answers.CAMPAIGN_MISSING,  # check 5
    campaign_unknown=answers.CAMPAIGN_UNKNOWN,  # check 6
    not_outbound=answers.NOT_OUTBOUND,  # check 7
    phone_missing=answers.BAD_PHONE,  # check 8
    phone_invalid=answers.BAD_PHONE,  # check 8
    do_not_call=answers.DND_NUMBER,  # check 8b
    bad_priority=answers.BAD_PRIORITY,  # check 9
    bad_date=answers.BAD_DATE,  # check 10
    past_date=answers.PAST_DATE,  # check 11
    agent_missing=answers.AGENT_MISSING,  # check 12
    agent_unmapped=answers.AGENT_UNMAPPED,  # check 13
    bad_skill=answers.BAD_SKILL,  # check 14
    duplicate=_duplicate,  # checks 15 and 16
    success=_success,
)


def check_lead(
    body: fields.Body, account: AccountInfo, campaign: CampaignInfo, words: Wording
) -> NewLead | Rejected | Later:
    """Checks 7 to 14 of one lead (the do-not-call check 8b is the caller's: a ``Later``
    carries the number it must look up first). Imports check each row with it."""
    return _lead(body, account, campaign, words)
