"""k-anonymity of a metrics export: small cells and totals suppressed, complementary cells
suppressed so that nothing below k can be derived, reasons that name no node, k in range."""

from __future__ import annotations

import json
import random

import pytest

from airlock.bundles.errors import UsageError
from airlock.bundles.metrics import MetricsCell, MetricsTotal
from airlock.spoke.metrics import Anonymised, CellGroup, TotalGroup, anonymise, check_k, totals_of

START, END = "2025-03-04T10:00:00Z", "2025-03-04T11:00:00Z"


def nodes(prefix: str, count: int) -> frozenset[str]:
    return frozenset(f"{prefix}-node-{i:02d}.plant.example" for i in range(count))


def cell(
    ring: str,
    members: frozenset[str],
    requests: int = 100,
    version: str = "2",
    window: tuple[str, str] = (START, END),
) -> CellGroup:
    made = MetricsCell(
        "iris", version, ring, window[0], window[1], len(members), requests, requests // 10
    )
    return CellGroup(made, members)


def run(groups: list[CellGroup], k: int = 5) -> Anonymised:
    return anonymise(groups, totals_of(groups), k)


def rings(result: Anonymised) -> list[str]:
    return [c.ring for c in result.cells]


def test_small_cell_suppressed_with_its_reason() -> None:
    result = run(
        [cell("stable", nodes("s", 6)), cell("canary", nodes("c", 3)), cell("early", nodes("e", 4))]
    )
    assert rings(result) == ["stable"]
    assert result.suppressed_cells == 2
    assert "iris@2 ring canary 2025-03-04 10:00-11:00: 3 nodes < k=5" in result.reasons
    assert "iris@2 ring early 2025-03-04 10:00-11:00: 4 nodes < k=5" in result.reasons
    [total] = result.totals
    assert (total.nodes, total.requests) == (13, 300)


def test_cell_derivable_from_total_minus_the_others_is_suppressed() -> None:
    # total 12 = stable 9 + canary 3: canary goes (3 < 5), and stable must go too,
    # or the hub reads canary as total − stable.
    result = run([cell("stable", nodes("s", 9), 900), cell("canary", nodes("c", 3), 30)])
    assert result.cells == ()
    assert [t.requests for t in result.totals] == [930]
    assert result.suppressed_cells == 2
    assert result.suppressed_totals == 0
    assert any(
        r.startswith("iris@2 ring stable 2025-03-04 10:00-11:00: complementary (protects")
        and "canary" in r
        for r in result.reasons
    )


def test_two_small_cells_covering_k_need_no_complement() -> None:
    groups = [
        cell("stable", nodes("s", 7)),
        cell("canary", nodes("c", 3)),
        cell("early", nodes("e", 2)),
    ]
    result = run(groups)
    assert rings(result) == ["stable"]
    assert result.suppressed_cells == 2
    assert not any("complementary" in r for r in result.reasons)


def test_complement_counts_distinct_nodes_not_cells() -> None:
    # the same three nodes reported in two rings (moved mid-window): 3 + 3 cell nodes,
    # but total − stable covers only 3 distinct nodes
    moved = nodes("m", 3)
    groups = [cell("stable", nodes("s", 6)), cell("canary", moved), cell("early", moved)]
    result = run(groups)
    assert result.cells == ()
    assert len(result.totals) == 1


def test_complement_takes_the_smallest_cell_ties_by_ring_name() -> None:
    groups = [
        cell("stable", nodes("s", 8)),
        cell("late", nodes("l", 6)),
        cell("early", nodes("e", 6)),
        cell("canary", nodes("c", 2)),
    ]
    result = run(groups)
    assert rings(result) == ["late", "stable"]
    assert result.suppressed_cells == 2


def test_total_below_k_suppresses_everything() -> None:
    groups = [cell("stable", nodes("s", 2)), cell("canary", nodes("c", 2))]
    result = run(groups)
    assert (result.cells, result.totals) == ((), ())
    assert (result.suppressed_cells, result.suppressed_totals) == (2, 1)
    assert "iris@2 total 2025-03-04 10:00-11:00: 4 nodes < k=5 (its 2 cells with it)" in (
        result.reasons
    )


def test_total_inconsistent_with_its_cells_fails_closed() -> None:
    # a total claiming more nodes than its cells hold: once every cell is gone the
    # difference still covers < k nodes, so the total goes too
    groups = [cell("canary", nodes("c", 2))]
    total = MetricsTotal("iris", "2", START, END, 5, 100, 10)
    result = anonymise(groups, [TotalGroup(total, nodes("t", 5))], 5)
    assert (result.cells, result.totals) == ((), ())
    assert result.suppressed_totals == 1


def test_large_groups_pass_untouched() -> None:
    groups = [cell("stable", nodes("s", 5)), cell("canary", nodes("c", 5))]
    result = run(groups)
    assert result.cells == tuple(g.cell for g in groups[::-1])
    assert (result.suppressed_cells, result.suppressed_totals, result.reasons) == (0, 0, ())


def test_window_across_midnight_is_named_by_date() -> None:
    late = ("2025-03-04T23:00:00Z", "2025-03-05T00:00:00Z")
    long = ("2025-03-04T00:00:00Z", "2025-03-06T00:00:00Z")
    result = run(
        [
            cell("stable", nodes("s", 6), window=late),
            cell("canary", nodes("c", 1), window=late),
            cell("canary", nodes("c", 1), window=long),
        ]
    )
    assert "iris@2 ring canary 2025-03-04 23:00-00:00: 1 nodes < k=5" in result.reasons
    assert any("2025-03-04 00:00-2025-03-06 00:00" in r for r in result.reasons)


def test_duplicate_cells_refused() -> None:
    groups = [cell("stable", nodes("s", 6)), cell("stable", nodes("t", 6))]
    with pytest.raises(UsageError, match="two cells"):
        anonymise(groups, [], 5)


@pytest.mark.parametrize("k", [-1, 0, 1, 10_001, True, 2.5, "5"])
def test_k_out_of_range_refused(k: object) -> None:
    with pytest.raises(UsageError, match="k = "):
        check_k(k)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        anonymise([], [], k)  # type: ignore[arg-type]


def test_k_bounds_accepted() -> None:
    assert check_k(2) == 2
    assert check_k(10_000) == 10_000


RINGS = ("stable", "canary", "early", "late", "candidate")


def random_groups(rng: random.Random, case: int) -> list[CellGroup]:
    """Cells of 1-2 versions over 1-2 windows; nodes may report in several rings."""
    pool = [f"case{case}-node-{i:02d}" for i in range(rng.randint(1, 16))]
    windows = [(START, END), (END, "2025-03-04T12:00:00Z")][: rng.randint(1, 2)]
    groups = []
    for version in ("1", "2")[: rng.randint(1, 2)]:
        for window in windows:
            for ring in rng.sample(RINGS, rng.randint(1, len(RINGS))):
                members = frozenset(rng.sample(pool, rng.randint(1, len(pool))))
                requests = rng.randint(0, 1000)
                groups.append(cell(ring, members, requests, version, window))
    return groups


def tg_key(total: MetricsTotal) -> tuple[str, str, str]:
    return (total.model, total.version, total.window_start)


def test_nothing_below_k_is_published_or_derivable() -> None:
    """Property over random inputs: published figures and total − published cells cover
    no node or at least k nodes; reasons and published figures name no node."""
    rng = random.Random(7_2025)
    complements = 0
    for case in range(3000):
        groups = random_groups(rng, case)
        totals = totals_of(groups)
        k = rng.randint(2, 8)
        result = anonymise(groups, totals, k)
        published = {c.key for c in result.cells}
        assert len(published) + result.suppressed_cells == len(groups)
        assert len(result.totals) + result.suppressed_totals == len(totals)
        assert all(c.nodes >= k for c in result.cells)
        assert all(t.nodes >= k for t in result.totals)
        published_totals = {tg_key(t) for t in result.totals}
        for tg in totals:
            t = tg.total
            own = [g for g in groups if g.cell.key[:2] + g.cell.key[3:] == tg_key(t)]
            shown = [g for g in own if g.cell.key in published]
            hidden = [g for g in own if g.cell.key not in published]
            if tg_key(t) not in published_totals:
                assert not shown, "a cell of a suppressed total was published"
                continue
            derived = t.requests - sum(g.cell.requests for g in shown)
            union = frozenset[str]().union(*(g.node_ids for g in hidden))
            assert derived == sum(g.cell.requests for g in hidden)
            assert derived == 0 or len(union) >= k
            assert not union or len(union) >= k
            complements += any(len(g.node_ids) >= k for g in hidden)
        shown_text = [c.to_dict() for c in result.cells] + [t.to_dict() for t in result.totals]
        text = json.dumps([list(result.reasons), shown_text])
        assert "node-" not in text
    assert complements > 100, "the random inputs should exercise complementary suppression"
