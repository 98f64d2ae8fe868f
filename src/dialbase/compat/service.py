"""AddCampaignData: the contract's checks in their order, then the group-commit write.

No web framework here: ``handle`` takes the parsed body, the ``apiKey`` header (or None)
and the client address, and returns an ``Answer`` (HTTP status, JSON body, headers).

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

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dialbase import phones
from dialbase.campaigns.models import Direction, Routing
from dialbase.compat import answers, fields
from dialbase.compat.answers import Answer
from dialbase.compat.auth import Credentials, FamilyAuth, rate_limited
from dialbase.compat.directory import AccountInfo, CampaignInfo
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


class AddCampaignData:
    def __init__(self, auth: FamilyAuth, writer: GroupCommitWriter, dnc: DncLists) -> None:
        self.auth = auth
        self.directory = auth.directory
        self.limiter = auth.limiter
        self.writer = writer
        self.dnc = dnc

    async def handle(self, body: fields.Body, credentials: Credentials, address: str) -> Answer:
        identified = await self.auth.identify(body.fields, credentials, address, fresh=False)
        if isinstance(identified, Answer):  # checks 1 to 4 (or the bearer checks)
            return identified
        account = identified
        retry_after = await self.limiter.hit_account(account.id, account.rate_limit)
        if retry_after:
            return rate_limited(retry_after)
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
            refreshed = await self.auth.identify(body.fields, credentials, address, fresh=False)
            if isinstance(refreshed, Answer):
                return refreshed
            account = refreshed
        raise ServiceUnavailable(SETTINGS_MOVING)

    async def _check_and_write(self, body: fields.Body, account: AccountInfo) -> Attempt:
        """Checks 5 to 16 and the write."""
        values = body.fields
        if fields.is_blank(values.get("campaignname")):
            return Rejected(answers.CAMPAIGN_MISSING, content_only=True)
        name = (fields.as_text(values["campaignname"]) or "").strip()
        campaign = await self.directory.campaign(account.id, name)
        if campaign is None:
            return Rejected(answers.CAMPAIGN_UNKNOWN)
        lead = _lead(body, account, campaign)
        if isinstance(lead, Later):  # check 8b comes before checks 9 to 14
            if await self.dnc.listed(account.id, lead.phone_e164):
                return Rejected(answers.DND_NUMBER)
            return lead.rejected
        if isinstance(lead, Rejected):
            return lead
        result = await self.writer.submit(lead)
        if result.outcome is Outcome.STALE:
            return Stale(result.revision)
        if result.outcome is Outcome.DO_NOT_CALL:
            return Answer(answers.DND_NUMBER)
        if result.outcome is Outcome.DUPLICATE:
            skillwise = campaign.routing == Routing.SKILLWISE
            return Answer(answers.DUPLICATE_SKILLWISE if skillwise else answers.DUPLICATE)
        return Answer(_success(campaign, fields.action(values), result.action))


@dataclass(frozen=True, slots=True)
class Later:
    """A check after 8b refused the request: the do-not-call check (8b) answers first."""

    rejected: Rejected
    phone_e164: str


def _lead(
    body: fields.Body, account: AccountInfo, campaign: CampaignInfo
) -> NewLead | Rejected | Later:
    """Checks 7 to 14 (8b is the write batch's); the lead to write when they all pass."""
    values = body.fields
    if campaign.direction != Direction.OUTBOUND:
        return Rejected(answers.NOT_OUTBOUND)
    phone = fields.phone_number(values.get("phonenumber"))
    if phone is None:
        return Rejected(answers.BAD_PHONE, content_only=True)
    phone_e164, candidates = phones.normalized(phone, account.default_country)
    checked = _later_checks(values, account, campaign)
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
    values: dict[str, Any], account: AccountInfo, campaign: CampaignInfo
) -> _Checked | Rejected:
    """Checks 9 to 14: the first that fails, or the values they read."""
    priority = 1
    if "priority" in values:
        parsed = fields.priority(values["priority"])
        if parsed is None:
            return Rejected(answers.BAD_PRIORITY, content_only=True)
        priority = parsed
    expires_at = None
    if "expirydate" in values:
        expires_at = fields.expiry(values["expirydate"], account.zone)
        if expires_at is None:
            return Rejected(answers.BAD_DATE, content_only=True)
        if expires_at <= datetime.now(UTC):
            return Rejected(answers.PAST_DATE)
    agent = fields.optional_text(values.get("agentid"))
    skill = fields.optional_text(values.get("skill"))
    routing_error = _routing_error(campaign, agent, skill)
    if routing_error is not None:
        return Rejected(routing_error)
    return _Checked(priority, expires_at, agent, skill)


def _name(value: Any) -> str | None:
    if value is None:
        return None
    return fields.as_column_text(value).strip() or None


def _routing_error(
    campaign: CampaignInfo, agent: str | None, skill: str | None
) -> answers.Body | None:
    """Checks 12 to 14."""
    if campaign.routing == Routing.AGENTWISE:
        if agent is None:
            return answers.AGENT_MISSING
        if agent not in campaign.agents:
            return answers.AGENT_UNMAPPED
    elif campaign.routing == Routing.SKILLWISE and (skill is None or skill not in campaign.skills):
        return answers.BAD_SKILL
    return None


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
