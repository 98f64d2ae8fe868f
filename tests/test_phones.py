"""Numbers as dialbase compares them (E.164 when readable) and their candidate zones."""

from __future__ import annotations

import pytest

from dialbase import phones


@pytest.mark.parametrize("sent", ["+919876543210", "09876543210", "9876543210"])
def test_an_indian_number_in_any_form_is_one_number_with_country_in(sent: str) -> None:
    assert phones.normalized(sent, "IN") == ("+919876543210", ("Asia/Calcutta",))
    assert phones.e164(sent, "IN") == "+919876543210"


def test_an_international_number_needs_no_country() -> None:
    assert phones.normalized("+13125550123", None) == ("+13125550123", ("America/Chicago",))


@pytest.mark.parametrize("sent", ["9876543210", "09876543210", "00919876543210", "123"])
def test_without_a_country_a_national_number_stays_as_sent_without_zones(sent: str) -> None:
    assert phones.normalized(sent, None) == (sent, ())
    assert phones.e164(sent, None) == sent


def test_a_number_no_country_can_read_stays_as_sent() -> None:
    assert phones.normalized("+999123", None) == ("+999123", ())
