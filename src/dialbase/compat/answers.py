"""The bodies of the AddCampaignData contract, spelled exactly as clients match them.

``false_body`` is also the shape of dialbase's own HTTP-level errors on the compatible
endpoints (400, 413, 429, 503), built by ``dialbase.responses``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Body = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Answer:
    """What a compatible endpoint answers: HTTP status, JSON body, extra headers."""

    body: Body
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def false_body(message: str) -> Body:
    return {"status": "false", "message": message, "data": None}


API_KEY_MISSING = false_body("Api Key Should Not be Null or Empty.")  # check 1
USERNAME_MISSING = false_body("Username Should Not be Null or Empty.")  # check 2
INVALID_USER = false_body("Invalid User Details")  # check 3
NOT_BASIC_AUTH = false_body("Invalid action.")  # check 4
CAMPAIGN_MISSING = {"status": "Error", "message": "Please provide campaign details"}  # 5
CAMPAIGN_UNKNOWN = {"status": "FAIL", "message": "No User Found or Campaign Name is Invalid"}  # 6
NOT_OUTBOUND = {"status": "Fail", "message": "The selected campaign is not outbound"}  # 7
DND_NUMBER = {"status": "FAIL", "message": "PhoneNumber Added is a DND Number"}  # check 8b
BAD_PHONE = {  # check 8
    "status": "error",
    "message": "phone number should be numeric and must be between 3 to 16 digits"
    " and allows prefix +",
}
BAD_PRIORITY = {  # check 9
    "status": "Error",
    "message": "The priority value must be numeric and range from 0 to 99.",
}
BAD_DATE = {  # check 10
    "status": "Error",
    "message": "Invalid date format. Please pass date in format yyyy-MM-dd HH:mm:ss or yyyy-MM-dd",
}
PAST_DATE = {"status": "Error", "message": "The expiry date and time must be in the future"}  # 11
AGENT_MISSING = {"status": "FAIL", "message": "Agent Is Empty!"}  # check 12
AGENT_UNMAPPED = {"status": "FAIL", "message": "Agent is not correctly mapped!"}  # check 13
BAD_SKILL = {"status": "FAIL", "message": "Please provide valid skill"}  # check 14
DUPLICATE_SKILLWISE = {"status": "Success", "message": "Number Already Existed"}  # check 15
DUPLICATE = {"status": "SUCCESS", "message": "Number Already Exist"}  # check 16
UPDATED_ROUTED = {"status": "SUCCESS", "message": "SuccessFully Updated"}


def updated(dial_type: str) -> Body:
    return {"status": "Success", "message": f"SuccessFully Updated {dial_type} Campaign"}


def started(dial_type: str) -> Body:
    return {"status": "SUCCESS", "message": f"SuccessFully Updated, {dial_type} was started"}


def already_started(campaign: str) -> Body:
    return {"status": "Success", "message": f"Campaign {campaign} Is Already Started"}


def stopped(dial_type: str) -> Body:
    return {"status": "Success", "message": f"SuccessFully Updated {dial_type} Campaign Stoped"}


def invalid_action(dial_type: str) -> Body:
    return {
        "status": "Success",
        "message": "Please pass the valid Campaign action SuccessFully Updated"
        f" {dial_type} Campaign Data",
    }


# The older add endpoint (``compat.legacy``): ``{"status", "message"}`` in JSON or XML.
def legacy(status: str, message: str) -> Body:
    return {"status": status, "message": message}


LEGACY_NO_USER = legacy("FAIL", "No User Found")  # check 1
LEGACY_NOT_BASIC_AUTH = legacy("FAIL", "Invalid action.")  # check 2
LEGACY_CAMPAIGN = legacy("FAIL", "Campaign Name is Invalid")  # check 3
LEGACY_NOT_OUTBOUND = legacy("FAIL", "The selected campaign is not outbound")  # check 4
LEGACY_PHONE_MISSING = legacy("FAIL", "Phone Number is Empty!")  # check 5
LEGACY_PHONE_INVALID = legacy("FAIL", "Phone Number is Invalid!")  # check 6
LEGACY_DND = legacy("FAIL", DND_NUMBER["message"])  # check 7
LEGACY_PRIORITY = legacy("FAIL", BAD_PRIORITY["message"])  # check 8
LEGACY_DATE = legacy("FAIL", BAD_DATE["message"])  # check 9
LEGACY_PAST_DATE = legacy("FAIL", PAST_DATE["message"])  # check 10
LEGACY_AGENT_MISSING = legacy("FAIL", AGENT_MISSING["message"])  # check 11
LEGACY_AGENT_UNMAPPED = legacy("FAIL", AGENT_UNMAPPED["message"])  # check 11
LEGACY_SKILL = legacy("FAIL", BAD_SKILL["message"])  # check 11
LEGACY_DUPLICATE = legacy("SUCCESS", "Number Already Exist")  # check 12
LEGACY_UPDATED = legacy("SUCCESS", "Successfully Updated")


def legacy_started(dial_type: str) -> Body:
    return legacy("SUCCESS", f"Successfully Updated, {dial_type} was started")


def legacy_stopped(dial_type: str) -> Body:
    return legacy("SUCCESS", f"Successfully Updated, {dial_type} was stopped")


# Campaign status and start/stop (``compat.campaign_status``).
MANDATORY = {"status": "failure", "message": "All parameters are mandatory"}
NO_RECORD = {"status": "failure", "message": "no record found"}
STATUS_NOT_OUTBOUND = {"status": "failure", "message": "The selected campaign is not outbound"}


def status_set(dial_type: str, running: bool) -> Body:
    verb = "started" if running else "stopped"
    return {"status": "SUCCESS", "message": f"SUCCESSFULLY UPDATED, {dial_type} was {verb}"}
