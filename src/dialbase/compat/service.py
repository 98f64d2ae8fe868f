"""AddCampaignData: the contract's checks in their order, then the group-commit write.

No web framework here: ``handle`` takes the parsed body, the ``apiKey`` header (or None)
and the client address, and returns an ``Answer`` (HTTP status, JSON body, headers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dialbase.accounts.models import AuthMode
from dialbase.accounts.service import key_matches
from dialbase.campaigns.models import Direction, Routing
from dialbase.compat import answers, fields
from dialbase.compat.directory import AccountInfo, CampaignInfo, Directory
from dialbase.errors import ServiceUnavailable, compat_error_body
from dialbase.leads.writer import ActionResult, GroupCommitWriter, NewLead, Outcome
from dialbase.ratelimit import Limiter

MAX_RECHECKS = 5
RATE_LIMITED = "Too many requests for this account or address; retry after {} seconds."


# Rejections that depend on the request alone once checks 3 to 7 passed. Before answering
# one, the settings those checks used are re-read only if the revision was last read over
# CONTENT_ONLY_MAX_AGE seconds ago (every other rejection re-reads it): a malformed request
# costs no query, and an answer follows a settings change within that time.
CONTENT_ONLY_MAX_AGE = 1.0
_CONTENT_ONLY = frozenset(
    id(body)
    for body in (
        answers.CAMPAIGN_MISSING,
        answers.BAD_PHONE,
        answers.BAD_PRIORITY,
        answers.BAD_DATE,
    )
)


@dataclass(slots=True)
class Answer:
    body: dict[str, Any]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def _rate_limited(retry_after: int) -> Answer:
    body = compat_error_body(RATE_LIMITED.format(retry_after))
    return Answer(body, 429, {"Retry-After": str(retry_after)})


class AddCampaignData:
    def __init__(self, directory: Directory, limiter: Limiter, writer: GroupCommitWriter) -> None:
        self.directory = directory
        self.limiter = limiter
        self.writer = writer

    async def handle(self, body: fields.Body, header_key: str | None, address: str) -> Answer:
        counted = address_counted = False
        for _ in range(MAX_RECHECKS):
            account, answer = await self._identify(body.fields, header_key)
            if account is None:
                if not address_counted:  # before any further query: throttles key guessing
                    address_counted = True
                    retry_after = await self.limiter.hit_address(address)
                    if retry_after:
                        return _rate_limited(retry_after)
                if answer is answers.INVALID_USER and await self.directory.refresh():
                    continue  # an account may have just been created or changed
                return Answer(answer)
            if not counted:
                counted = True
                retry_after = await self.limiter.hit_account(account.id, account.rate_limit)
                if retry_after:
                    return _rate_limited(retry_after)
            result = await self._check_and_write(body, account)
            if isinstance(result, Answer):
                return result
            # Rejected by a check, or the write saw newer settings: check again if they moved.
            rejected, moved_to = result
            if moved_to is not None:
                self.directory.saw_revision(moved_to)
                continue
            max_age = CONTENT_ONLY_MAX_AGE if id(rejected) in _CONTENT_ONLY else 0.0
            if await self.directory.refresh(max_age):
                continue
            return Answer(rejected)
        raise ServiceUnavailable("The account's settings are changing too fast; try again.")

    async def _identify(
        self, values: dict[str, Any], header_key: str | None
    ) -> tuple[AccountInfo | None, answers.Body]:
        """Checks 1 to 3."""
        key: Any = header_key if header_key is not None else values.get("apikey")
        if key is None:
            return None, answers.API_KEY_MISSING
        if fields.is_blank(values.get("username")):
            return None, answers.USERNAME_MISSING
        key_text = fields.as_text(key) or ""
        username = fields.as_text(values["username"]) or ""
        account = await self.directory.account(username)
        if account is None or not key_text or not key_matches(account.api_key_hash, key_text):
            return None, answers.INVALID_USER
        return account, {}

    async def _check_and_write(
        self, body: fields.Body, account: AccountInfo
    ) -> Answer | tuple[answers.Body, int | None]:
        """Checks 4 to 16 and the write; a rejection comes back as (body, None)."""
        values = body.fields
        if account.auth_mode != AuthMode.BASIC_AUTH:
            return answers.NOT_BASIC_AUTH, None
        if fields.is_blank(values.get("campaignname")):
            return answers.CAMPAIGN_MISSING, None
        name = (fields.as_text(values["campaignname"]) or "").strip()
        campaign = await self.directory.campaign(account.id, name)
        if campaign is None:
            return answers.CAMPAIGN_UNKNOWN, None
        lead = self._lead(body, account, campaign)
        if isinstance(lead, dict):
            return lead, None
        result = await self.writer.submit(lead)
        if result.outcome is Outcome.STALE:
            return {}, result.revision
        if result.outcome is Outcome.DUPLICATE:
            routing = campaign.routing
            dup = answers.DUPLICATE_SKILLWISE if routing == Routing.SKILLWISE else answers.DUPLICATE
            return Answer(dup)
        return Answer(_success(campaign, fields.action(values), result.action))

    def _lead(
        self, body: fields.Body, account: AccountInfo, campaign: CampaignInfo
    ) -> NewLead | answers.Body:
        """Checks 7 to 14; the lead to write when they all pass."""
        values = body.fields
        if campaign.direction != Direction.OUTBOUND:
            return answers.NOT_OUTBOUND
        phone = fields.phone_number(values.get("phonenumber"))
        if phone is None:
            return answers.BAD_PHONE
        priority = 1
        if "priority" in values:
            parsed = fields.priority(values["priority"])
            if parsed is None:
                return answers.BAD_PRIORITY
            priority = parsed
        expires_at = None
        if "expirydate" in values:
            expires_at = fields.expiry(values["expirydate"], account.zone)
            if expires_at is None:
                return answers.BAD_DATE
            if expires_at <= datetime.now(UTC):
                return answers.PAST_DATE
        agent = fields.optional_text(values.get("agentid"))
        skill = fields.optional_text(values.get("skill"))
        routing_error = _routing_error(campaign, agent, skill)
        if routing_error is not None:
            return routing_error
        action = fields.action(values)
        return NewLead(
            campaign_id=campaign.id,
            revision=min(account.revision, campaign.revision),
            phone_number=phone,
            name=_name(values.get("name")),
            priority=priority,
            expires_at=expires_at,
            agent_id=agent,
            skill=skill,
            extra=body.extra,
            check_duplicate=fields.check_duplicate(values.get("checkduplicate")),
            action=action if action in ("start", "stop") else None,
        )


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
