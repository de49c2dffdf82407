"""Latency sketch merge accuracy within its stated bound.

Node sketches are merged at the spoke (per cell) and again at the hub (across
sites), in whatever order and grouping the data arrives. Merging must be exact
(the same buckets as one sketch of every latency), and any quantile read back
must be within (γ−1)/(γ+1) (~1.96 %, under the 2 % the module states) of the
exact order statistic ``sorted[floor(q * (n - 1))]``.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable

import pytest

from airlock.bundles.metrics import GAMMA, LatencySketch

BOUND = (GAMMA - 1) / (GAMMA + 1)
QUANTILES = (0.0, 0.5, 0.9, 0.95, 0.99, 1.0)

Draw = Callable[[random.Random], float]
DISTRIBUTIONS: dict[str, Draw] = {
    "log-normal": lambda rng: rng.lognormvariate(3.0, 1.0),
    "uniform": lambda rng: rng.uniform(0.5, 500.0),
    "heavy-tailed": lambda rng: 2.0 * rng.paretovariate(1.1),
    "sub-millisecond": lambda rng: rng.uniform(0.003, 0.9),
}


def node_latencies(rng: random.Random, draw: Draw, nodes: int = 40) -> list[list[float]]:
    """Each node's latencies; nodes differ in volume (some report none) and in speed."""
    out = []
    for _ in range(nodes):
        speed = rng.uniform(0.5, 2.0)
        out.append([speed * draw(rng) for _ in range(rng.choice((0, 1, 7, 300, 2500)))])
    return out


def tree_merge(sketches: list[LatencySketch]) -> LatencySketch:
    """Pairwise merging, as sites and then the hub would group them."""
    layer = [LatencySketch(dict(s.buckets)) for s in sketches]
    while len(layer) > 1:
        paired = [LatencySketch.merged(layer[i : i + 2]) for i in range(0, len(layer), 2)]
        layer = paired
    return layer[0]


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_merges_in_any_order_equal_the_sketch_of_all(name: str) -> None:
    rng = random.Random(f"sketch-merge-{name}")
    per_node = node_latencies(rng, DISTRIBUTIONS[name])
    everything = [v for values in per_node for v in values]
    whole = LatencySketch.of(everything)
    sketches = [LatencySketch.of(values) for values in per_node]
    shuffled = sketches[:]
    rng.shuffle(shuffled)
    # through JSON, as node reports and payloads carry them
    carried = [LatencySketch.from_dict(json.loads(json.dumps(s.to_dict()))) for s in sketches]
    by_site = [LatencySketch.merged(carried[i : i + 7]) for i in range(0, len(carried), 7)]
    merges = {
        "in order": LatencySketch.merged(sketches),
        "reversed": LatencySketch.merged(reversed(sketches)),
        "shuffled": LatencySketch.merged(shuffled),
        "pairwise": tree_merge(shuffled),
        "by site, then hub": LatencySketch.merged(by_site[::-1]),
    }
    for how, merged in merges.items():
        assert merged.to_dict() == whole.to_dict(), how
        assert merged.count == len(everything), how


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_merged_quantiles_within_the_stated_bound(name: str) -> None:
    rng = random.Random(f"sketch-quantiles-{name}")
    per_node = node_latencies(rng, DISTRIBUTIONS[name])
    merged = LatencySketch.merged(LatencySketch.of(values) for values in per_node)
    exact = sorted(v for values in per_node for v in values)
    assert BOUND < 0.02
    for q in QUANTILES:
        truth = exact[math.floor(q * (len(exact) - 1))]
        read = merged.quantile(q)
        assert read is not None
        assert abs(read - truth) <= BOUND * truth * (1 + 1e-9), (q, read, truth)


def test_bound_is_tight_at_bucket_edges() -> None:
    """The stated bound is the worst case: values at both edges of a bucket reach it."""
    edge = GAMMA**10
    for value in (edge, edge / GAMMA * (1 + 1e-12)):
        read = LatencySketch.of([value]).quantile(0.5)
        assert read is not None
        error = abs(read - value) / value
        assert error <= BOUND * (1 + 1e-9)
        assert error >= BOUND * 0.999


def test_empty_merge_reads_nothing() -> None:
    assert LatencySketch.merged([LatencySketch(), LatencySketch.of([])]).quantile(0.5) is None
