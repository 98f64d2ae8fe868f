"""The ``/v1`` API's request and response shapes (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from dialbase.dialer.explain import Explained, Forecast, reason_codes
from dialbase.dialer.models import Outcome
from dialbase.dialer.service import (
    DEFAULT_LEASE_SECONDS,
    MAX_COUNT,
    MAX_LEASE_SECONDS,
    MAX_NAME_CHARS,
    MAX_NOTE_CHARS,
    MIN_LEASE_SECONDS,
    LeasedLead,
    Report,
)
from dialbase.dialer.stats import CampaignStats, PriorityStats
from dialbase.errors import DATABASE_DOWN
from dialbase.responses import INTERNAL


class Shape(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class LeaseRequest(Shape):
    agent_id: str | None = Field(
        default=None, max_length=MAX_NAME_CHARS, description="Required by agent-wise campaigns."
    )
    skill: str | None = Field(
        default=None, max_length=MAX_NAME_CHARS, description="Required by skill-wise campaigns."
    )
    count: int = Field(default=1, ge=1, le=MAX_COUNT, description="How many leads at most.")
    lease_seconds: int = Field(
        default=DEFAULT_LEASE_SECONDS,
        ge=MIN_LEASE_SECONDS,
        le=MAX_LEASE_SECONDS,
        description="Time to report the outcome; unreported, the lead returns to the queue.",
    )


class LeadOut(Shape):
    phone_number: str
    name: str | None
    priority: int
    agent_id: str | None
    skill: str | None
    extra: dict[str, Any]
    attempt: int = Field(description="1 for the first dial of this lead, 2 for the next...")
    callback: bool = Field(description="True when this is a callback the person asked for.")


class LeaseOut(Shape):
    lease_id: str
    deadline: datetime
    lead: LeadOut

    @classmethod
    def of(cls, leased: LeasedLead) -> LeaseOut:
        lead = LeadOut(
            phone_number=leased.phone_number,
            name=leased.name,
            priority=leased.priority,
            agent_id=leased.agent_id,
            skill=leased.skill,
            extra=leased.extra,
            attempt=leased.attempt,
            callback=leased.callback,
        )
        return cls(lease_id=leased.lease_id, deadline=leased.deadline, lead=lead)


class LeaseList(Shape):
    leases: list[LeaseOut] = Field(description="Empty when no lead is due.")


class OutcomeRequest(Shape):
    outcome: Outcome
    note: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)
    callback_at: datetime | None = Field(
        default=None,
        description="With outcome callback: when to call back (ISO 8601 with an offset, in"
        " the future, within 365 days).",
    )
    agent_id: str | None = Field(
        default=None,
        max_length=MAX_NAME_CHARS,
        description="With outcome callback: only a lease asking for this agent gets it.",
    )


class OutcomeOut(Shape):
    lease_id: str
    outcome: Outcome
    lead_status: str = Field(
        description="retry (dialed again later), callback (due at callbackAt) or done."
    )
    attempt: int
    next_attempt_at: datetime | None

    @classmethod
    def of(cls, report: Report) -> OutcomeOut:
        return cls(
            lease_id=report.lease_id,
            outcome=Outcome(report.outcome),
            lead_status=report.lead_status,
            attempt=report.attempt,
            next_attempt_at=report.next_attempt_at,
        )


class RunningOut(Shape):
    campaign: str
    running: bool
    changed: bool = Field(description="False when the campaign already was in that state.")


class DeletedOut(Shape):
    campaign: str
    phone_number: str = Field(description="The number as given.")
    deleted: int = Field(description="How many leads were deleted (at least 1).")


class LeadCounts(Shape):
    total: int = Field(description="Leads not deleted (a deleted lead's leases still count).")
    pending: int = Field(description="Due now: new, retry time come, or lease lapsed.")
    leased: int
    retry_scheduled: int
    callback_scheduled: int = Field(description="Callbacks, due or booked for later.")
    held: int = Field(description="Waiting for the number's 24-hour attempt cap.")
    done: int
    expired: int

    @classmethod
    def of(cls, leads: dict[str, int]) -> LeadCounts:
        return cls(
            total=sum(leads.values()),
            pending=leads["pending"],
            leased=leads["leased"],
            retry_scheduled=leads["retry"],
            callback_scheduled=leads["callback"],
            held=leads["held"],
            done=leads["done"],
            expired=leads["expired"],
        )


class PriorityOut(Shape):
    priority: int
    leads: LeadCounts
    attempts: int

    @classmethod
    def of(cls, stats: PriorityStats) -> PriorityOut:
        return cls(
            priority=stats.priority, leads=LeadCounts.of(stats.leads), attempts=stats.attempts
        )


class StatsOut(Shape):
    campaign: str
    running: bool
    routing: str
    agents: list[str]
    skills: list[str]
    max_attempts: int
    retry_delay_seconds: int
    leads: LeadCounts
    attempts: int = Field(description="Dial attempts so far (leases handed out).")
    connects: int
    leases: dict[str, int] = Field(description="Leases by outcome, and lapsed ones.")
    next_retry_at: datetime | None
    by_priority: list[PriorityOut] = Field(description="Highest priority first.")

    @classmethod
    def of(cls, stats: CampaignStats) -> StatsOut:
        campaign = stats.campaign
        return cls(
            campaign=campaign.name,
            running=campaign.running,
            routing=campaign.routing,
            agents=list(campaign.agents),
            skills=list(campaign.skills),
            max_attempts=campaign.max_attempts,
            retry_delay_seconds=campaign.retry_delay_seconds,
            leads=LeadCounts.of(stats.leads),
            attempts=stats.attempts,
            connects=stats.connects,
            leases=stats.leases,
            next_retry_at=stats.next_retry_at,
            by_priority=[PriorityOut.of(p) for p in stats.by_priority],
        )


class ReasonOut(Shape):
    code: str = Field(description="One of: " + ", ".join(reason_codes()) + ".")
    message: str
    until: datetime | None = Field(default=None, description="When this reason ends, if known.")


class ExplainedLeadOut(Shape):
    lead_id: int
    phone_number: str = Field(description="As sent.")
    status: str
    time_zones: list[str] = Field(description="The zones its calling hours are read in.")
    dialable: bool = Field(description="Whether a lease could hand it out now.")
    reasons: list[ReasonOut] = Field(description="Why not (empty when dialable).")
    next_dialable_at: datetime | None = Field(
        description="The first instant it can be dialed (if the campaign runs); null: never."
    )

    @classmethod
    def of(cls, lead: Explained) -> ExplainedLeadOut:
        return cls(
            lead_id=lead.lead_id,
            phone_number=lead.phone_number,
            status=lead.status,
            time_zones=list(lead.time_zones),
            dialable=lead.dialable,
            reasons=[
                ReasonOut(code=r.code, message=r.message, until=r.until) for r in lead.reasons
            ],
            next_dialable_at=lead.next_dialable_at,
        )


class ExplainOut(Shape):
    campaign: str
    at: datetime
    leads: list[ExplainedLeadOut] = Field(description="The number's leads, oldest first.")


class HourOut(Shape):
    start: datetime
    become_dialable: int


class ForecastOut(Shape):
    campaign: str
    at: datetime
    running: bool
    queued: int = Field(description="Leads not finished: pending, leased, retry, held, callback.")
    dialable_now: int
    blocked: dict[str, int] = Field(description="Queued leads not dialable now, by main reason.")
    next_hours: list[HourOut] = Field(
        description="Leads that become dialable in each of the next 24 hours."
    )
    later: int = Field(description="Leads that become dialable after those 24 hours.")
    never: int = Field(description="Queued leads that will not become dialable.")

    @classmethod
    def of(cls, campaign: str, found: Forecast) -> ForecastOut:
        return cls(
            campaign=campaign,
            at=found.at,
            running=found.running,
            queued=found.queued,
            dialable_now=found.dialable_now,
            blocked=found.blocked,
            next_hours=[HourOut(start=start, become_dialable=n) for start, n in found.hours],
            later=found.later,
            never=found.never,
        )


class Problem(BaseModel):
    """RFC 9457 problem details: the body of every ``/v1`` error."""

    type: str = Field(default="about:blank", description="Always `about:blank`.")
    title: str = Field(description="The status's HTTP phrase, such as `Not Found`.")
    status: int
    detail: str = Field(description="What went wrong, for a person to read.")


# Every status a ``/v1`` operation may answer with problem details: when, and an example.
_PROBLEMS: dict[int, tuple[str, str]] = {
    400: (
        "The body cannot be read as text (not UTF-8)",
        "There was an error parsing the body",
    ),
    401: ("No, malformed or wrong credentials", "wrong user name or API key"),
    404: ("Unknown campaign or lease, or another account's", "no lease '4f0c...'"),
    409: (
        "Lease already reported or expired, or its lead deleted; leasing from a stopped campaign",
        "lease '4f0c...' was already reported (busy)",
    ),
    422: (
        "Malformed JSON; an invalid body or parameter (the detail names each field)",
        "body.count: Input should be less than or equal to 100",
    ),
    429: (
        "Too many failed authentications from this address; see Retry-After",
        "too many failed authentications from this address; retry in 12 s",
    ),
    500: ("An unexpected server error (it is logged)", INTERNAL),
    503: ("The database is unavailable; nothing was changed", DATABASE_DOWN),
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": 'Always `Basic realm="dialbase"`.',
            "schema": {"type": "string"},
        }
    },
    429: {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these statuses, served as
    ``application/problem+json`` only (``dialbase.responses.problem``)."""
    schema = Problem.model_json_schema()
    found: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, detail = _PROBLEMS[status]
        example = {
            "type": "about:blank",
            "title": HTTPStatus(status).phrase,
            "status": status,
            "detail": detail,
        }
        entry: dict[str, Any] = {
            "description": description,
            "content": {"application/problem+json": {"schema": schema, "example": example}},
        }
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        found[status] = entry
    return found
