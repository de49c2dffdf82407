"""The one envelope policy both receivers apply: a spoke to the hub's bundles, the hub
to a site's metrics bundles (:class:`airlock.bundles.bundle.EnvelopePolicy`)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from airlock.bundles.bundle import HUB_KINDS, EnvelopePolicy
from airlock.bundles.errors import (
    AirlockError,
    FreshnessError,
    MediaError,
    StaleBundleError,
    UsageError,
    VerificationError,
    WrongSiteError,
)
from airlock.bundles.models import BundleKind, Envelope, PayloadPart

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
HUB_BUNDLE = Envelope(
    bundle_id="b-1",
    kind=BundleKind.FULL,
    source="hub",
    site_id="plant-7",
    sequence=3,
    created=NOW - dt.timedelta(hours=1),
    expires=NOW + dt.timedelta(days=30),
    encrypted=True,
    parts=(PayloadPart("payload.age", 10, "0" * 64),),
)
METRICS_BUNDLE = dataclasses.replace(
    HUB_BUNDLE,
    kind=BundleKind.METRICS,
    source="site:plant-7",
    window=(NOW - dt.timedelta(days=1), NOW),
)
AT_SITE = EnvelopePolicy(
    kinds=HUB_KINDS,
    site_id="plant-7",
    incoming=True,
    noun="bundle",
    expired_hint="ask the hub for a new export",
    time_floor=NOW - dt.timedelta(days=1),
    max_clock_skew=dt.timedelta(minutes=5),
    last_sequence=2,
    require_encryption=True,
)
AT_HUB = EnvelopePolicy(
    kinds=(BundleKind.METRICS,),
    site_id="plant-7",
    incoming=False,
    noun="metrics bundle",
    expired_hint="export the metrics again at the site",
    parts=("payload.age",),
    max_part_bytes=100,
)


def test_a_good_envelope_passes_both_ways() -> None:
    AT_SITE.check(HUB_BUNDLE, NOW)
    AT_HUB.check(METRICS_BUNDLE, NOW)


@pytest.mark.parametrize(
    ("policy", "envelope", "error", "message"),
    [
        (AT_SITE, METRICS_BUNDLE, UsageError, "this is a metrics bundle"),
        (AT_HUB, HUB_BUNDLE, UsageError, "this is a full bundle"),
        (
            AT_SITE,
            dataclasses.replace(HUB_BUNDLE, site_id="plant-9"),
            WrongSiteError,
            "the bundle is for site 'plant-9', this is site 'plant-7'",
        ),
        (
            dataclasses.replace(AT_HUB, site_id="plant-9"),
            METRICS_BUNDLE,
            WrongSiteError,
            "the metrics bundle claims site 'plant-9' but was made by 'site:plant-7'",
        ),
        (
            AT_SITE,
            dataclasses.replace(HUB_BUNDLE, created=NOW + dt.timedelta(minutes=6)),
            FreshnessError,
            "the bundle was created at 2026-12-07T12:06:00+00:00, after the local clock",
        ),
        (
            AT_SITE,
            dataclasses.replace(HUB_BUNDLE, expires=NOW),
            FreshnessError,
            "the bundle expired at 2026-12-07T12:00:00Z",
        ),
        (
            AT_HUB,
            dataclasses.replace(METRICS_BUNDLE, expires=NOW),
            FreshnessError,
            "the metrics bundle expired at 2026-12-07T12:00:00Z",
        ),
        (
            AT_SITE,
            dataclasses.replace(HUB_BUNDLE, sequence=2),
            StaleBundleError,
            "bundle sequence 2 is not newer than the imported 2: nothing changed",
        ),
        (
            AT_SITE,
            dataclasses.replace(HUB_BUNDLE, encrypted=False),
            VerificationError,
            "the bundle is not encrypted and this site requires encryption",
        ),
        (
            AT_HUB,
            dataclasses.replace(
                METRICS_BUNDLE,
                parts=(*METRICS_BUNDLE.parts, PayloadPart("payload.age.001", 1, "0" * 64)),
            ),
            MediaError,
            "a metrics bundle has exactly one payload part, payload.age",
        ),
        (
            AT_HUB,
            dataclasses.replace(METRICS_BUNDLE, parts=(PayloadPart("payload.age", 101, "0" * 64),)),
            MediaError,
            "the metrics payload is implausibly large; refusing it",
        ),
    ],
)
def test_each_refusal_has_its_error_and_wording(
    policy: EnvelopePolicy, envelope: Envelope, error: type[AirlockError], message: str
) -> None:
    with pytest.raises(error) as caught:
        policy.check(envelope, NOW)
    assert message in str(caught.value)


def test_a_clock_behind_the_floor_is_refused_unless_the_root_rotates() -> None:
    behind = NOW - dt.timedelta(days=2)
    envelope = dataclasses.replace(HUB_BUNDLE, created=behind - dt.timedelta(hours=1))
    with pytest.raises(FreshnessError, match="earlier than the newest verified time"):
        AT_SITE.check(envelope, behind)
    AT_SITE.check(envelope, behind, rotation=True)


def test_an_old_sequence_is_stale_unless_the_root_rotates() -> None:
    replay = dataclasses.replace(HUB_BUNDLE, sequence=1)
    with pytest.raises(StaleBundleError):
        AT_SITE.check(replay, NOW)
    AT_SITE.check(replay, NOW, rotation=True)


def test_the_site_is_checked_before_freshness() -> None:
    both = dataclasses.replace(HUB_BUNDLE, site_id="plant-9", expires=NOW)
    with pytest.raises(WrongSiteError):
        AT_SITE.check(both, NOW)
