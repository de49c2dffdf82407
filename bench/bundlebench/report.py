"""The benchmark's report: the summary per command, the verdicts, the notes.

Seconds are the best of the rounds, peak RSS the highest. The column "ours vs this"
on a reference row is that reference's seconds divided by ours (a throughput ratio:
above 1, ours is faster).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bundlebench.model import TINY_BYTES, MiB
from bundlebench.phases import spans
from bundlebench.runner import Runs
from bundlebench.targets import PASS

# label (without the size) -> (operation, command as printed, the "ours" label it compares to)
ROWS: dict[str, tuple[str, str, str | None]] = {
    "intake ours": ("intake", "airlock hub model add", None),
    "intake reference": ("intake", "cp -r && openssl dgst -sha256", "intake ours"),
    "export ours": ("export", "airlock hub export (one volume)", None),
    "export reference": ("export", "tar cf - | age -r", "export ours"),
    "import ours": ("import", "airlock spoke import", None),
    "import plain": ("import", "age -d | tar xf -", "import ours"),
    "import digest": ("import", "age -d | tar xf - && openssl dgst", "import ours"),
    "export volumes": ("export", "airlock hub export --volume-size V", None),
    "export parity": ("export", "airlock hub export --volume-size V --parity 1", None),
    "import complete": ("import", "airlock spoke import (parity bundle)", None),
    "import rebuild": ("import", "airlock spoke import (a data volume lost)", None),
}
TINY_ROWS = {
    "intake tiny": ("intake", "airlock hub model add"),
    "export tiny": ("export", "airlock hub export"),
    "import tiny": ("import", "airlock spoke import"),
    "unlock tiny": ("", "  of which: identity unlock (alone)"),
}
_SIZE = re.compile(r"^(?P<what>.+) @(?P<mib>\d+)$")


def summarise(
    runs: Mapping[str, Runs], sizes: Mapping[int, int], main: int
) -> dict[str, dict[str, Any]]:
    """Per label: best seconds, MiB/s (model bytes / seconds), highest peak RSS MiB, and for
    a reference the ratio of its seconds to ours; ``net`` rows: ours minus the tiny model."""
    summary: dict[str, dict[str, Any]] = {}
    for label, run in runs.items():
        match = _SIZE.match(label)
        size = sizes.get(int(match["mib"]), 0) if match else 0
        row: dict[str, Any] = {
            "seconds": round(run.best, 3),
            "mib_per_s": round(size / MiB / run.best, 1) if size else None,
            "peak_rss_mib": round(run.peak_rss_mib, 1),
            "ours_vs_this": None,
        }
        compare = ROWS.get(match["what"], ("", "", None))[2] if match else None
        ours = f"{compare} @{match['mib']}" if compare and match else ""
        if ours in runs:
            row["ours_vs_this"] = round(run.best / runs[ours].best, 3)
        summary[label] = row
    for op in ("intake", "export", "import"):
        ours, tiny = f"{op} ours @{main}", f"{op} tiny"
        if ours in runs and tiny in runs:
            net = runs[ours].best - runs[tiny].best
            ref = f"{'import plain' if op == 'import' else op + ' reference'} @{main}"
            summary[f"{op} net @{main}"] = {
                "seconds": round(net, 3) if net > 0 else None,
                "mib_per_s": round(sizes[main] / MiB / net, 1) if net > 0 else None,
                "peak_rss_mib": None,
                "ours_vs_this": (
                    round(runs[ref].best / net, 3) if net > 0 and ref in runs else None
                ),
            }
    return summary


def print_report(results: Mapping[str, Any]) -> None:
    """Prints the tables, the resume figures, the verdicts and the notes."""
    summary, facts = results["summary"], results["facts"]
    print(
        f"\nbundle benchmark, best of {results['repeat']} round(s), page cache warm, "
        f"{results['created']}; load average {_load(results['loadavg']['start'])} at the "
        f"start, {_load(results['loadavg']['end'])} at the end ({results['host']['cpus']} CPUs)"
    )
    header = (
        f"{'':9} {'command':46} {'seconds':>8} {'MiB/s':>7} {'peak RSS MiB':>12} "
        f"{'ours vs this':>12}"
    )
    formats = facts.get("formats", {})
    for mib in results["sizes_mib"]:
        fmt = formats.get(f"export ours @{mib}")
        print(f"\n{mib} MiB ONNX model (graph + external data), bundle format {fmt}")
        print(header)
        for what, (op, command, _) in ROWS.items():
            if f"{what} @{mib}" in summary:
                print(f"{op:9} {command:46} {_row(summary[f'{what} @{mib}'])}")
        media = facts.get("media")
        if media and f"export parity @{mib}" in summary:
            print(
                f"{'':9} V = {media['volume_size']:,} bytes: {media['data_volumes']} data "
                f"volume(s) + {media['parity_volumes']} parity; the rebuild import went "
                f"without {media['lost']}"
            )
    print(f"\nfixed cost: the same commands on a {TINY_BYTES >> 10} KiB model")
    print(header)
    for label, (op, command) in TINY_ROWS.items():
        if label in summary:
            print(f"{op:9} {command:46} {_row(summary[label])}")
    main = results["sizes_mib"][0]
    nets = [
        op
        for op in ("intake", "export", "import")
        if summary.get(f"{op} net @{main}", {}).get("seconds") is not None
    ]
    if nets:
        print(f"net: seconds on the {main} MiB model minus seconds on the tiny one")
        for op in nets:
            print(f"{op:9} {ROWS[op + ' ours'][1]:46} {_row(summary[f'{op} net @{main}'])}")
    print("ours vs this = the reference's seconds / ours (> 1: ours is faster).")
    print("ours fsyncs its output; the reference pipelines do not.")
    if facts.get("phases"):
        print_phases(facts["phases"])
    resume = facts.get("resume")
    if resume:
        print_resume(resume)
    print()
    for target in results["targets"]:
        status = target["status"] if target["status"] != PASS else "PASS"
        line = f"{status:12} {target['text']}: {target['value'] or '-'}"
        if target["reason"]:
            line += f" [{target['reason']}]"
        print(line)
    for note in results["notes"]:
        print(f"info         {note}")


def print_phases(phases: Mapping[str, Any]) -> None:
    """Each profiled command split into before / each phase / after (``bundlebench.phases``)."""
    print(
        "\nwhere the time and the memory go (one more run each with --json; peak RSS = "
        "VmHWM by the end of the span):"
    )
    for label, result in phases.items():
        if result is None:
            print(f"  {label}: the profiled run failed (see its log)")
            continue
        print(f"  {label}: {result['seconds']:.2f} s, peak RSS {result['peak_rss_mib']:.1f} MiB")
        for start, end, what, rss in spans(result):
            peak = "" if rss is None else f"peak RSS {rss:8.1f} MiB"
            print(f"    {start:7.2f} – {end:7.2f} s  {end - start:6.2f} s  {what:28} {peak}")


def print_resume(resume: Mapping[str, Any]) -> None:
    """The resume measurement's tallies (bytes read from the volume files, via strace)."""
    m = MiB
    print(
        f"\nresume (kill -9 halfway, then import again; {resume['volume_files']} volume files, "
        f"{resume['volume_bytes'] / m:.1f} MiB; bytes read from them, counted by strace):"
    )
    print(f"  complete import          {resume['full'] / m:10.1f} MiB")
    print(f"  first import, killed     {resume['first'] / m:10.1f} MiB")
    print(
        f"  second import            {resume['second'] / m:10.1f} MiB "
        f"(plus {resume['second_state_reads'] / m:.1f} MiB from its import state)"
    )
    for key, value in resume["reported_by_second"]:
        print(f"  second import's --json   {value / m:10.1f} MiB ({key})")
    for key, names in resume.get("volumes_by_second", {}).items():
        print(f"  second import's --json   volumes {key}: {len(names)} {sorted(names)}")
    verified = resume["status_verified"]
    if verified:
        print(
            f"  --status after the kill  {sum(v for _, v in verified):,} chunk(s) verified "
            f"({', '.join(f'{k} = {v}' for k, v in verified)})"
        )


def _load(values: list[float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def _row(row: Mapping[str, Any]) -> str:
    def cell(value: float | None, spec: str, suffix: str = "") -> str:
        return "" if value is None else format(value, spec) + suffix

    return (
        f"{cell(row['seconds'], '.2f'):>8} {cell(row['mib_per_s'], '.0f'):>7} "
        f"{cell(row['peak_rss_mib'], '.1f'):>12} {cell(row['ours_vs_this'], '.2f', 'x'):>12}"
    )


def notes(
    summary: Mapping[str, Mapping[str, Any]],
    facts: Mapping[str, Any],
    floor: int,
    scrypt: Mapping[str, int],
) -> list[str]:
    """What the targets alone do not say: the key unlock, the measuring floor, unmeasured groups."""
    lines = []
    unlock = summary.get("unlock tiny")
    if unlock is not None:
        lines.append(
            f"every import unlocks the spoke's sealed age identity: scrypt N = {scrypt['n']}, "
            f"r = {scrypt['r']}, p = {scrypt['p']} "
            f"({128 * scrypt['r'] * scrypt['n'] / MiB:.0f} MiB of scrypt state, fixed); "
            f"alone it took {unlock['seconds']:.2f} s and peaked at "
            f"{unlock['peak_rss_mib']:.0f} MiB, whatever the bundle size (an import may run "
            "it on a second thread while it loads its modules)"
        )
    formats = facts.get("formats", {})
    if formats:
        lines.append(
            "bundle formats written: " + ", ".join(f"{k}: {v}" for k, v in sorted(formats.items()))
        )
    lines.append(f"peak RSS is resolved down to {floor / MiB:.1f} MiB (the measuring launcher)")
    return lines
