"""Issue 14's targets, each judged on the unrounded figure.

A target is PASS, MISSED (the figure is printed with as many digits as it takes for
the printed number alone to give the same verdict: 0.8996 is never shown as 0.90 next
to a 0.9 line) or NOT MEASURED (the reason is printed, and any figure taken on what
could be run — say, a format-1 bundle while format 2 is not merged). Anything but
PASS fails the benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bundlebench.runner import Runs

PASS, MISSED, NOT_MEASURED = "PASS", "MISSED", "NOT MEASURED"
EXPORT_RATIO = 1.0  # ours at least as fast as tar | age
IMPORT_RATIO = 0.9  # ours at least 0.9x age -d | tar x
FIXED_SECONDS = 0.6  # tiny model, identity unlock included
RSS_MIB = 100.0  # peak RSS, export and import, either size
RSS_GROWTH_MIB = 10.0  # flat: peak at the flat size minus peak at the main size
PARITY_COST = 1.3  # export --parity 1 / export, same volume size
REBUILD_COST = 1.5  # import rebuilding one lost data volume / complete import
RESUME_FRACTION = 0.05  # bytes re-read / bytes the interrupted import had verified


@dataclass(frozen=True)
class Target:
    """One target's verdict.

    Attributes:
        key: Stable name, e.g. ``"export speed @1024"``.
        text: What is required.
        status: PASS, MISSED or NOT MEASURED.
        value: The figure(s), as printed.
        figure: The judged figure (None when there is none).
        reason: Why NOT MEASURED.
    """

    key: str
    text: str
    status: str
    value: str = ""
    figure: float | None = None
    reason: str | None = None


def verdict(figure: float, limit: float, at_least: bool) -> str:
    """PASS or MISSED: ``figure >= limit`` (``at_least``) or ``figure <= limit``."""
    return PASS if (figure >= limit if at_least else figure <= limit) else MISSED


def shown(figure: float, limit: float, at_least: bool, digits: int = 2) -> str:
    """``figure`` with the fewest digits (from ``digits``) that keep its verdict."""
    for d in range(digits, 10):
        text = f"{figure:.{d}f}"
        if verdict(float(text), limit, at_least) == verdict(figure, limit, at_least):
            return text
    return repr(figure)


class Judge:
    """Builds the targets from the runs, the facts and what could not be measured."""

    def __init__(
        self, runs: Mapping[str, Runs], facts: Mapping[str, Any], unmeasured: Mapping[str, str]
    ) -> None:
        self.runs, self.facts, self.unmeasured = runs, facts, unmeasured
        self.targets: list[Target] = []

    def why(self, *groups: str) -> str:
        """The recorded reason a group was not measured (or that it was not run)."""
        for group in groups:
            if group in self.unmeasured:
                return self.unmeasured[group]
        return "not run"

    def format_of(self, label: str) -> int | None:
        """The bundle format the export ``label`` wrote."""
        formats: Mapping[str, int] = self.facts.get("formats", {})
        return formats.get(label)

    def add(
        self,
        key: str,
        text: str,
        figure: float | None,
        limit: float,
        at_least: bool,
        value: str,
        unit: str,
        reason: str | None = None,
    ) -> None:
        """Judges ``figure`` against ``limit``; NOT MEASURED when ``reason`` or no figure."""
        if figure is not None:
            value = f"{shown(figure, limit, at_least)}{unit}{' ' + value if value else ''}"
        if reason is not None or figure is None:
            status = NOT_MEASURED
        else:
            status = verdict(figure, limit, at_least)
        self.targets.append(Target(key, text, status, value, figure, reason))

    def speed(
        self, key: str, text: str, ours: str, ref: str, limit: float, group: str, export: str
    ) -> None:
        """Speed ratio ``ref.best / ours.best``, at least ``limit``; NOT MEASURED unless the
        bundle (written by the run ``export``) was format 2."""
        if ours not in self.runs or ref not in self.runs:
            self.add(key, text, None, limit, True, "", "x", self.why(group))
            return
        a, b = self.runs[ours].best, self.runs[ref].best
        self.add(key, text, b / a, limit, True, f"(ours {a:.2f} s, reference {b:.2f} s)", "x")
        self.require_format2(export)

    def cost(self, key: str, text: str, base: str, costly: str, limit: float, group: str) -> None:
        """Cost ratio ``costly.best / base.best``, at most ``limit``."""
        if base not in self.runs or costly not in self.runs:
            self.add(key, text, None, limit, False, "", "x", self.why(group))
            return
        a, b = self.runs[base].best, self.runs[costly].best
        self.add(key, text, b / a, limit, False, f"({b:.2f} s vs {a:.2f} s)", "x")

    def require_format2(self, label: str) -> None:
        """Turns the last target into NOT MEASURED when export ``label`` was not format 2."""
        fmt = self.format_of(label)
        last = self.targets[-1]
        if last.status != NOT_MEASURED and fmt != 2:
            reason = f"the bundle was format {fmt}: the CLI does not export format 2 yet"
            self.targets[-1] = Target(
                last.key, last.text, NOT_MEASURED, last.value, last.figure, reason
            )


def build_targets(
    runs: Mapping[str, Runs],
    facts: Mapping[str, Any],
    unmeasured: Mapping[str, str],
    main_mib: int,
    flat_mib: int,
) -> list[Target]:
    """Every target of issue 14, in the issue's order."""
    judge = Judge(runs, facts, unmeasured)
    for op, limit, ref, name in (
        ("export", EXPORT_RATIO, "export reference", "tar cf - | age -r"),
        ("import", IMPORT_RATIO, "import plain", "age -d | tar xf -"),
    ):
        for mib in (main_mib, flat_mib):
            judge.speed(
                f"{op} speed @{mib}",
                f"{op} {mib} MiB >= {limit:.1f}x `{name}` (end to end, best of rounds)",
                f"{op} ours @{mib}",
                f"{ref} @{mib}",
                limit,
                f"export and import @{mib}",
                f"export ours @{mib}",
            )
    for op in ("export", "import"):
        label = f"{op} tiny"
        seconds = runs[label].best if label in runs else None
        judge.add(
            f"{op} fixed cost",
            f"`airlock {'hub' if op == 'export' else 'spoke'} {op}` of a 64 KiB model "
            f"<= {FIXED_SECONDS} s (identity unlock included)",
            seconds, FIXED_SECONDS, False, "", " s",
            None if seconds is not None else judge.why("fixed cost"),
        )  # fmt: skip
    for op in ("export", "import"):
        rss_target(judge, op, main_mib, flat_mib)
    judge.cost(
        "parity export cost",
        f"export --parity 1 <= {PARITY_COST}x the same export without parity "
        "(same --volume-size, about 4 data volumes)",
        f"export volumes @{main_mib}",
        f"export parity @{main_mib}",
        PARITY_COST,
        "volumes and parity",
    )
    judge.cost(
        "rebuild import cost",
        f"import rebuilding one lost data volume <= {REBUILD_COST}x the complete import",
        f"import complete @{main_mib}",
        f"import rebuild @{main_mib}",
        REBUILD_COST,
        "volumes and parity",
    )
    resume_target(judge)
    return judge.targets


def rss_target(judge: Judge, op: str, main_mib: int, flat_mib: int) -> None:
    """Peak RSS <= 100 MiB at both sizes, and flat: the flat size's within 10 MiB of the main's."""
    key = f"{op} peak RSS"
    text = (
        f"{op} peak RSS <= {RSS_MIB:.0f} MiB at {main_mib} and {flat_mib} MiB, flat "
        f"({flat_mib} MiB minus {main_mib} MiB <= {RSS_GROWTH_MIB:.0f} MiB)"
    )
    labels = (f"{op} ours @{main_mib}", f"{op} ours @{flat_mib}")
    if any(label not in judge.runs for label in labels):
        groups = [f"export and import @{m}" for m in (main_mib, flat_mib)]
        judge.add(key, text, None, RSS_MIB, False, "", " MiB", judge.why(*groups))
        return
    small, big = (judge.runs[label].peak_rss_mib for label in labels)
    growth = big - small
    missed = [
        f"{mib} MiB: {shown(rss, RSS_MIB, False, 1)} MiB > {RSS_MIB:.0f}"
        for mib, rss in ((main_mib, small), (flat_mib, big))
        if rss > RSS_MIB
    ]
    if growth > RSS_GROWTH_MIB:
        missed.append(f"grew {shown(growth, RSS_GROWTH_MIB, False, 1)} MiB > {RSS_GROWTH_MIB:.0f}")
    value = (
        f"{main_mib} MiB: {small:.1f} MiB, {flat_mib} MiB: {big:.1f} MiB, growth {growth:+.1f} MiB"
        + (f" — {'; '.join(missed)}" if missed else "")
    )
    judge.targets.append(Target(key, text, MISSED if missed else PASS, value, max(small, big)))
    judge.require_format2(f"export ours @{main_mib}")
    judge.require_format2(f"export ours @{flat_mib}")


def resume_target(judge: Judge) -> None:
    """Bytes re-read by the resumed import <= 5 % of what the interrupted one verified."""
    key, text = (
        "resume re-read",
        (
            f"after kill -9 halfway, the second import re-reads <= {RESUME_FRACTION:.0%} "
            "of the bytes the first had verified (counted by strace)"
        ),
    )
    facts = judge.facts.get("resume")
    reason = judge.unmeasured.get("resume")
    if facts is None or reason is not None:
        judge.add(key, text, None, RESUME_FRACTION, False, "", "", reason or "not run")
        return
    reread = facts["first"] + facts["second"] - facts["full"]
    figure = reread / facts["first"]
    value = (
        f"= {reread / 2**20:.1f} MiB re-read / {facts['first'] / 2**20:.1f} MiB verified "
        f"(complete import {facts['full'] / 2**20:.1f} MiB, second run "
        f"{facts['second'] / 2**20:.1f} MiB)"
    )
    judge.add(key, text, figure * 100, RESUME_FRACTION * 100, False, value, " %")
