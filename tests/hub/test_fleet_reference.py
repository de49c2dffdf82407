"""The drift reference: a version's answers on its signed validation set, computed at the hub."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest
from helpers.fleetenv import Fleet
from helpers.gatemodels import classification, make_adder, regression, release
from sqlmodel import Session

from airlock.bundles.clock import FixedClock
from airlock.bundles.metrics import CONFIDENCE_BUCKETS, value_bucket
from airlock.hub.context import HubContext
from airlock.hub.fleet import (
    EXPECTED_LABELS,
    VALIDATION_SET,
    js_distance,
    reference_distribution,
)
from airlock.hub.store import HubReferenceDistribution

CONFIDENCE_KEYS = {f"{i / CONFIDENCE_BUCKETS:.1f}" for i in range(CONFIDENCE_BUCKETS)}


def labels_of(path: Path) -> dict[str, int]:
    with np.load(path) as archive:
        expected = archive["expected"]
    values, counts = np.unique(expected, return_counts=True)
    return {str(v): int(c) for v, c in zip(values, counts, strict=True)}


def test_reference_runs_the_model_on_its_validation_set(
    fleet: Fleet, fleet_hub: HubContext
) -> None:
    with Session(fleet_hub.engine, expire_on_commit=False) as session:
        ref = reference_distribution(session, fleet_hub, "iris", "2")
        session.commit()
    assert ref is not None
    assert ref.source == VALIDATION_SET
    with np.load(fleet.iris.sets["good"]) as archive:
        rows = len(archive["inputs"])
    assert ref.rows == rows == sum(ref.predictions.values())
    # The "good" set's labels are the model's own answers: counting them is counting the run.
    assert ref.predictions == labels_of(fleet.iris.sets["good"])
    assert ref.confidence and set(ref.confidence) <= CONFIDENCE_KEYS
    assert sum(ref.confidence.values()) == rows


def test_reference_is_cached(fleet_hub: HubContext) -> None:
    clock = fleet_hub.clock
    assert isinstance(clock, FixedClock)
    with Session(fleet_hub.engine, expire_on_commit=False) as session:
        first = reference_distribution(session, fleet_hub, "iris", "1")
        assert first is not None
        computed_at, predictions = first.computed_at, dict(first.predictions)
        session.commit()
    # The cache is used: the blobs are no longer needed, the time is the first one.
    for blob in fleet_hub.blobs.directory.iterdir():
        blob.unlink()
    clock.advance(dt.timedelta(hours=1))
    with Session(fleet_hub.engine, expire_on_commit=False) as session:
        again = reference_distribution(session, fleet_hub, "iris", "1")
        assert again is not None
        assert (again.computed_at, again.predictions) == (computed_at, predictions)
        assert session.get(HubReferenceDistribution, ("iris", "1")) is not None


def test_model_with_external_data_and_regression(fleet_hub: HubContext, tmp_path: Path) -> None:
    adder = make_adder(tmp_path / "adder")
    release(fleet_hub, "adder", "1", adder.path, adder.sets["exact"], regression())
    with Session(fleet_hub.engine, expire_on_commit=False) as session:
        ref = reference_distribution(session, fleet_hub, "adder", "1")
    assert ref is not None and ref.source == VALIDATION_SET
    with np.load(adder.sets["exact"]) as archive:
        expected = archive["expected"]
    buckets: dict[str, int] = {}
    for row in expected:
        key = value_bucket(float(row[0]))
        buckets[key] = buckets.get(key, 0) + 1
    assert ref.predictions == buckets and ref.rows == len(expected)
    assert ref.confidence == {}


def test_model_that_cannot_run_falls_back_to_expected_labels(
    fleet: Fleet, fleet_hub: HubContext, tmp_path: Path
) -> None:
    narrow = tmp_path / "narrow.npz"
    np.savez(narrow, inputs=np.ones((12, 3), np.float32), expected=np.array([0, 1, 1] * 4))
    release(fleet_hub, "iris", "7", fleet.iris.path, narrow, classification())
    with Session(fleet_hub.engine, expire_on_commit=False) as session:
        ref = reference_distribution(session, fleet_hub, "iris", "7")
    assert ref is not None
    assert ref.source == EXPECTED_LABELS
    assert ref.predictions == {"0": 4, "1": 8} and ref.rows == 12
    assert ref.confidence == {}


def test_no_validation_set_no_reference(fleet: Fleet, fleet_hub: HubContext) -> None:
    release(fleet_hub, "iris", "8", fleet.iris.path)
    with Session(fleet_hub.engine, expire_on_commit=False) as session:
        assert reference_distribution(session, fleet_hub, "iris", "8") is None
        assert reference_distribution(session, fleet_hub, "iris", "99") is None
        assert session.get(HubReferenceDistribution, ("iris", "8")) is None


def js_by_hand(p: dict[str, float], q: dict[str, float]) -> float:
    """The textbook definition, for comparison: sqrt(½ KL(P‖M) + ½ KL(Q‖M)), base 2."""
    ps = {k: v / sum(p.values()) for k, v in p.items()}
    qs = {k: v / sum(q.values()) for k, v in q.items()}
    keys = set(ps) | set(qs)
    m = {k: (ps.get(k, 0) + qs.get(k, 0)) / 2 for k in keys}

    def kl(a: dict[str, float]) -> float:
        return sum(a[k] * math.log2(a[k] / m[k]) for k in a if a[k] > 0)

    return math.sqrt(0.5 * kl(ps) + 0.5 * kl(qs))


def test_js_distance() -> None:
    assert js_distance({"a": 3, "b": 1}, {"a": 30, "b": 10}) == pytest.approx(0.0, abs=1e-7)
    assert js_distance({"a": 5}, {"b": 2}) == pytest.approx(1.0)
    # P = (1, 0), Q = (½, ½): M = (¾, ¼); ½·log2(4/3) + ½·(½·log2(2/3) + ½·log2(2)).
    expected = math.sqrt(0.5 * math.log2(4 / 3) + 0.25 * math.log2(2 / 3) + 0.25)
    assert js_distance({"a": 1}, {"a": 1, "b": 1}) == pytest.approx(expected)
    assert expected == pytest.approx(0.5579, abs=1e-4)
    p, q = {"0": 10, "1": 70, "2": 20}, {"0": 33, "1": 33, "2": 34}
    assert js_distance(p, q) == pytest.approx(js_by_hand(p, q))  # type: ignore[arg-type]
    assert js_distance({}, {"a": 1}) is None
