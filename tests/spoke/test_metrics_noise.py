"""Differential-privacy noise on a metrics export, with the real OpenDP: counts change,
are unbiased and of the stated scale, stay valid (>= 0, errors <= requests), node counts
do not change, the ten confidence buckets are a fixed domain.

The statistical checks are not seeded (OpenDP draws from the OS): each compares a mean
over many independent draws with its expectation, with a tolerance whose failure
probability is bounded by a Chernoff bound computed from the exact discrete Laplace
distribution (:func:`chernoff`), and asserted to be below 1e-10 per check.
"""

from __future__ import annotations

import math

import pytest

from airlock.bundles.errors import UsageError
from airlock.bundles.metrics import MetricsCell, NoiseSpec
from airlock.spoke.metrics import CONFIDENCE_DOMAIN, CellGroup, add_noise

START, END = "2025-03-04T10:00:00Z", "2025-03-04T11:00:00Z"
DRAWS = 4000
CHECK_FAILURE = 1e-10
"""The most a single statistical check may fail by chance (six checks: < 1e-9 in all)."""


def group(index: int, **counts: object) -> CellGroup:
    values: dict[str, object] = {
        "requests": 1000,
        "errors": 100,
        "latency": {"40": 500, "41": 300},
        "predictions": {"setosa": 600, "virginica": 400},
        "confidence": {"0.9": 800, "0.8": 200},
        "shadow_compared": 900,
        "shadow_disagreed": 300,
    }
    values.update(counts)
    cell = MetricsCell("iris", "2", f"ring-{index}", START, END, 6, **values)  # type: ignore[arg-type]
    return CellGroup(cell, frozenset(f"node-{index}-{n}" for n in range(6)))


def discrete_laplace(scale: float) -> dict[int, float]:
    """P(X = j) ∝ exp(-|j| / scale), truncated where the tail is below 1e-80."""
    alpha = math.exp(-1 / scale)
    norm = (1 - alpha) / (1 + alpha)
    reach = int(200 * scale)
    return {j: norm * alpha ** abs(j) for j in range(-reach, reach + 1)}


def absolute(pmf: dict[int, float]) -> dict[int, float]:
    out: dict[int, float] = {}
    for value, p in pmf.items():
        out[abs(value)] = out.get(abs(value), 0.0) + p
    return out


def chernoff(pmf: dict[int, float], n: int, tolerance: float, scale: float) -> float:
    """Bound on P(|mean of n draws − expectation| >= tolerance), both tails (Chernoff)."""
    mean = sum(v * p for v, p in pmf.items())
    bound = 0.0
    for sign in (1, -1):
        rate = 0.0
        for step in range(1, 100):
            lam = step / 100 * 0.95 / scale  # the MGF exists for lam < 1/scale
            mgf = sum(p * math.exp(sign * lam * (v - mean)) for v, p in pmf.items())
            rate = max(rate, lam * tolerance - math.log(mgf))
        bound += math.exp(-n * rate)
    return bound


def expectation(pmf: dict[int, float]) -> float:
    return sum(v * p for v, p in pmf.items())


@pytest.fixture(scope="module")
def noised() -> tuple[list[CellGroup], list[CellGroup], NoiseSpec]:
    spec = NoiseSpec(epsilon=1.0)  # six families: 1/6 each, scale 6
    groups = [group(i) for i in range(DRAWS)]
    return groups, add_noise(groups, spec), spec


def test_noise_changes_counts(noised: tuple[list[CellGroup], list[CellGroup], NoiseSpec]) -> None:
    groups, out, _ = noised
    for field in ("requests", "errors", "shadow_compared", "shadow_disagreed"):
        assert len({getattr(g.cell, field) for g in out}) > 10, field
    assert len({g.cell.latency["40"] for g in out}) > 10
    assert sum(g.cell.predictions != groups[0].cell.predictions for g in out) > DRAWS / 2


def test_noise_is_unbiased_and_of_the_stated_scale(
    noised: tuple[list[CellGroup], list[CellGroup], NoiseSpec],
) -> None:
    _, out, spec = noised
    scale = 1 / spec.family_epsilon
    assert scale == pytest.approx(6.0)
    pmf = discrete_laplace(scale)
    tolerance = 1.0
    assert chernoff(pmf, DRAWS, tolerance, scale) < CHECK_FAILURE
    # counts far from 0 and from each other: clamping has probability < 1e-60 per draw
    figures = {
        "requests": ([g.cell.requests for g in out], 1000),
        "latency 40": ([g.cell.latency["40"] for g in out], 500),
        "setosa": ([g.cell.predictions["setosa"] for g in out], 600),
        "confidence 0.9": ([g.cell.confidence["0.9"] for g in out], 800),
        "disagreed": ([g.cell.shadow_disagreed for g in out], 300),
    }
    for name, (values, truth) in figures.items():
        assert abs(sum(values) / DRAWS - truth) < tolerance, name
    # the scale: mean |noise| is 2a/(1-a^2), a = exp(-1/scale) — ~6, not the ~0.6 of
    # an unsplit budget
    spread = absolute(pmf)
    assert chernoff(spread, DRAWS, tolerance, scale) < CHECK_FAILURE
    deviation = sum(abs(g.cell.requests - 1000) for g in out) / DRAWS
    assert abs(deviation - expectation(spread)) < tolerance


def test_noised_counts_stay_valid() -> None:
    spec = NoiseSpec(epsilon=0.6)  # scale 10 on counts of 0-2: clamping happens often
    groups = [
        group(
            i,
            requests=2,
            errors=2,
            latency={"3": 1},
            predictions={"a": 1},
            confidence={},
            shadow_compared=1,
            shadow_disagreed=1,
        )
        for i in range(1000)
    ]
    out = add_noise(groups, spec)
    for g in out:
        c = g.cell
        counts = [c.requests, c.errors, c.shadow_compared, c.shadow_disagreed]
        counts += [*c.latency.values(), *c.predictions.values(), *c.confidence.values()]
        assert min(counts) >= 0
        assert 0 not in (*c.latency.values(), *c.predictions.values(), *c.confidence.values())
        assert c.errors <= c.requests
        assert c.shadow_disagreed <= c.shadow_compared
        assert MetricsCell.from_dict(c.to_dict()) == c
    assert any(g.cell.requests == 0 for g in out)  # the clamps were exercised
    assert any(0 < g.cell.errors == g.cell.requests for g in out)


def test_node_counts_and_keys_unchanged(
    noised: tuple[list[CellGroup], list[CellGroup], NoiseSpec],
) -> None:
    groups, out, _ = noised
    assert len(out) == len(groups)
    for before, after in zip(groups, out, strict=True):
        assert after.node_ids == before.node_ids
        assert after.cell.nodes == before.cell.nodes
        assert (after.cell.key, after.cell.window_end) == (before.cell.key, before.cell.window_end)


def test_all_ten_confidence_buckets_get_noise(
    noised: tuple[list[CellGroup], list[CellGroup], NoiseSpec],
) -> None:
    _, out, _ = noised
    seen = {key for g in out for key in g.cell.confidence}
    # each empty bucket is positive in a cell with probability ~0.46: never in 4000
    # cells has probability < 1e-1000
    assert seen == set(CONFIDENCE_DOMAIN)
    assert len(CONFIDENCE_DOMAIN) == 10


def test_families_left_out_are_published_exactly() -> None:
    groups = [group(i, errors=0) for i in range(400)]
    out = add_noise(groups, NoiseSpec(epsilon=1.0, families=("requests",)))
    assert sum(g.cell.requests != 1000 for g in out) > 100  # ~54 % of 400 expected
    for before, after in zip(groups, out, strict=True):
        assert after.cell.latency == before.cell.latency
        assert after.cell.predictions == before.cell.predictions
        assert after.cell.confidence == before.cell.confidence
        assert after.cell.shadow_disagreed == before.cell.shadow_disagreed
        assert after.cell.shadow_compared == before.cell.shadow_compared


@pytest.mark.parametrize(
    "spec",
    [
        NoiseSpec(epsilon=1.0, families=("requests", "latencies")),
        NoiseSpec(epsilon=1.0, families=("requests", "requests")),
        NoiseSpec(epsilon=1.0, mechanism="gaussian"),
    ],
)
def test_unknown_families_or_mechanism_refused(spec: NoiseSpec) -> None:
    with pytest.raises(UsageError):
        add_noise([group(0)], spec)


def test_no_cells_no_noise() -> None:
    assert add_noise([], NoiseSpec(epsilon=1.0)) == []
