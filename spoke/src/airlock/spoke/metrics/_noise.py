"""Optional differential privacy for a metrics export: discrete Laplace noise on counts.

When a site asks for noise, every count of every family named in the export's
:class:`~airlock.bundles.metrics._model.NoiseSpec` gets independent noise from
OpenDP's integer Laplace mechanism (the discrete Laplace, or two-sided
geometric, distribution; OpenDP samples it, Airlock has no sampler of its own)
with scale ``1 / family_epsilon``:

- ``requests`` and ``errors`` of each cell;
- ``latency``: each bucket of each cell's sketch;
- ``predictions``: each predicted class (or value bucket) of each cell;
- ``confidence``: all ten buckets ``"0.0"`` … ``"0.9"`` of each cell, present or
  not (a fixed domain), and any other key present;
- ``shadow``: each cell's agreeing and disagreeing comparisons, from which
  ``shadow_compared`` (their sum) and ``shadow_disagreed`` are rebuilt.

Then, as post-processing (no extra budget): counts are clamped to >= 0,
``errors`` to <= ``requests``; zero buckets are dropped. Node counts and node
sets are not noised: k-suppression (:mod:`airlock.spoke.metrics._anonymise`)
decides on true node counts, and the hub recomputes totals from the noised
cells (:func:`~airlock.spoke.metrics._aggregate.totals_of`).

The guarantee, precisely. The unit protected is one *event*: one model run as
a node's recorder counts it (one request answered by one model version — a
request in shadow mode is two runs, one per version) for ``requests``,
``errors`` and ``latency``; one answered row for ``predictions``,
``confidence`` and ``shadow``. Within a family, one event changes one count of
one cell by one (a run lands in one node window, hence one model version, ring
and export window, hence one cell; in it, one latency bucket; a row has one
answer, one confidence bucket, and agrees or disagrees): the family's counts
across all cells form one vector of L1 sensitivity 1, noised at once, so the
family is ``family_epsilon``-DP (parallel composition over the disjoint
cells). OpenDP's own privacy map is checked for every family (the scale is
nudged up by a rounding step when the map demands it). Across the families
composition is sequential: each export is ``epsilon``-DP for one event
(``epsilon = family_epsilon × len(families)``); exports cover windows that do
not overlap, so one event is spent in one export only.

What is *not* protected, and must be read as such:

- key presence: which latency buckets and which prediction keys a cell has is
  published exactly (only present keys get noise); a rare class or an
  outlying latency shows up as a key. Confidence buckets are a fixed domain.
- larger units: a request of ``r`` rows is protected at ``r × family_epsilon``
  in the row families (group privacy), a node or a person behind ``n`` events
  at ``n ×`` the budget. Node-level protection comes from k-suppression, not
  from noise.
- which nodes reported in which cell (and so which cells are published, and
  their node counts): the noise protects counts, not the fact that a node
  reported at all.
- families left out of ``spec.families``: published exactly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

from airlock.bundles.errors import AirlockError, UsageError
from airlock.bundles.metrics import CONFIDENCE_BUCKETS, NOISE_FAMILIES, NoiseSpec
from airlock.spoke.metrics._aggregate import CellGroup

MECHANISM = "discrete-laplace"
CONFIDENCE_DOMAIN = tuple(f"{i / CONFIDENCE_BUCKETS:.1f}" for i in range(CONFIDENCE_BUCKETS))
"""The ten confidence buckets (:func:`airlock.bundles.metrics.confidence_bucket`)."""

Sampler = Callable[[list[int]], list[int]]


def _sampler(epsilon: float) -> Sampler:
    """OpenDP's integer Laplace on vectors of L1 sensitivity 1, at most ``epsilon``-DP."""
    import opendp.prelude as dp  # ~2 s: only when noise is asked for

    dp.enable_features("contrib")
    space = dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64")
    scale = 1 / epsilon
    for _ in range(64):
        meas = space >> dp.m.then_laplace(scale=scale)
        if meas.map(1) <= epsilon:
            return _bind(meas)
        scale = math.nextafter(scale, math.inf)
    raise AirlockError(
        f"OpenDP does not certify epsilon {epsilon!r} for the Laplace mechanism",
        hint="choose another noise epsilon",
    )


def _bind(meas: Callable[[list[int]], list[int]]) -> Sampler:
    def sample(values: list[int]) -> list[int]:
        return [int(v) for v in meas(values)] if values else []

    return sample


def _check(spec: NoiseSpec) -> None:
    if spec.mechanism != MECHANISM:
        raise UsageError(
            f"noise mechanism {spec.mechanism!r} is not supported",
            hint=f"the only mechanism is {MECHANISM}",
        )
    unknown = sorted(set(spec.families) - set(NOISE_FAMILIES))
    if unknown or len(set(spec.families)) != len(spec.families) or not spec.families:
        raise UsageError(
            f"noise families {list(spec.families)} are not distinct names of {NOISE_FAMILIES}",
            hint="name each count family to noise once",
        )


class _Cells:
    """Mutable copies of the cells' counts, addressed as (family, cell index, key)."""

    def __init__(self, groups: Sequence[CellGroup]) -> None:
        cells = [g.cell for g in groups]
        self.requests = [c.requests for c in cells]
        self.errors = [c.errors for c in cells]
        self.latency = [dict(c.latency) for c in cells]
        self.predictions = [dict(c.predictions) for c in cells]
        self.confidence = [
            {key: c.confidence.get(key, 0) for key in CONFIDENCE_DOMAIN} | dict(c.confidence)
            for c in cells
        ]
        self.agreed = [c.shadow_compared - c.shadow_disagreed for c in cells]
        self.disagreed = [c.shadow_disagreed for c in cells]

    def noise(self, family: str, sample: Sampler) -> None:
        if family == "requests":
            self.requests = sample(self.requests)
        elif family == "errors":
            self.errors = sample(self.errors)
        elif family == "shadow":
            both = sample(self.agreed + self.disagreed)
            self.agreed, self.disagreed = both[: len(self.agreed)], both[len(self.agreed) :]
        else:
            maps: list[dict[str, int]] = getattr(self, family)
            slots = [(i, key) for i, counts in enumerate(maps) for key in sorted(counts)]
            for (i, key), value in zip(
                slots, sample([maps[i][key] for i, key in slots]), strict=True
            ):
                maps[i][key] = value


def _positive(counts: dict[str, int], numeric: bool = False) -> dict[str, int]:
    """The positive counts, sorted by key (bucket index order for a latency sketch)."""
    keys = sorted(counts, key=int) if numeric else sorted(counts)
    return {key: counts[key] for key in keys if counts[key] > 0}


def add_noise(groups: Sequence[CellGroup], spec: NoiseSpec) -> list[CellGroup]:
    """The cells with noise on every count of ``spec.families`` (see the module docstring).

    Args:
        groups: The true cells (:func:`~airlock.spoke.metrics._aggregate.aggregate`).
        spec: The export's budget and the families it covers.

    Returns:
        The same cells, in the same order, with noised counts and the same node sets.

    Raises:
        UsageError: the mechanism is not discrete Laplace, or a family is unknown or repeated.
    """
    _check(spec)
    if not groups:
        return []
    sample = _sampler(spec.family_epsilon)
    work = _Cells(groups)
    for family in spec.families:
        work.noise(family, sample)
    out: list[CellGroup] = []
    for i, group in enumerate(groups):
        requests = max(work.requests[i], 0)
        agreed, disagreed = max(work.agreed[i], 0), max(work.disagreed[i], 0)
        cell = dataclasses.replace(
            group.cell,
            requests=requests,
            errors=min(max(work.errors[i], 0), requests),
            latency=_positive(work.latency[i], numeric=True),
            predictions=_positive(work.predictions[i]),
            confidence=_positive(work.confidence[i]),
            shadow_compared=agreed + disagreed,
            shadow_disagreed=disagreed,
        )
        out.append(CellGroup(cell, group.node_ids))
    return out
