"""The envelope's claims against the Director timestamp's ``x-airlock-bundle``."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from airlock.bundles.bundle import check_bound, envelope_claims
from airlock.bundles.errors import IntegrityError
from airlock.bundles.models import BundleKind, Envelope, PayloadPart

CREATED = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
ENVELOPE = Envelope(
    bundle_id="b-1",
    kind=BundleKind.FULL,
    source="hub",
    site_id="plant-7",
    sequence=3,
    created=CREATED,
    expires=CREATED + dt.timedelta(days=30),
    encrypted=True,
    parts=(PayloadPart("payload.age", 10, "0" * 64),),
)


def test_equal_claims_pass_and_have_the_envelope_form() -> None:
    claims = envelope_claims(ENVELOPE)
    assert claims == {
        "bundle_id": "b-1",
        "site_id": "plant-7",
        "sequence": 3,
        "kind": "full",
        "created": "2026-12-07T12:00:00Z",
        "expires": "2027-01-06T12:00:00Z",
    }
    check_bound(ENVELOPE, claims)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("site_id", "plant-9"),
        ("sequence", 2**62),
        ("sequence", "3"),
        ("kind", "revocation"),
        ("bundle_id", "b-2"),
        ("created", "2026-12-07T12:00:01Z"),
        ("expires", "2099-01-01T00:00:00Z"),
    ],
)
def test_a_differing_claim_is_refused_naming_both_values(field: str, value: Any) -> None:
    signed = {**envelope_claims(ENVELOPE), field: value}
    with pytest.raises(IntegrityError) as caught:
        check_bound(ENVELOPE, signed)
    assert field in caught.value.message and repr(value) in caught.value.message
    assert caught.value.hint


@pytest.mark.parametrize("signed", [None, [], "claims"])
def test_missing_claims_are_refused(signed: Any) -> None:
    with pytest.raises(IntegrityError, match="signs no bundle claims"):
        check_bound(ENVELOPE, signed)


def test_a_missing_single_claim_is_refused() -> None:
    signed = envelope_claims(dataclasses.replace(ENVELOPE))
    del signed["kind"]
    with pytest.raises(IntegrityError, match="kind"):
        check_bound(ENVELOPE, signed)
