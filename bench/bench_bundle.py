"""`make bench`: export and import of big models, side by side with the stock tools.

Measures every speed and memory target of issue 14 in one run, next to the stock tools
on the same data, prints the figures and the ratios, and exits 1 when a target is
missed (printed MISSED with its figure) or could not be measured (NOT MEASURED, with
the reason: a format-2 piece not merged yet, a command that failed — its log is named).

Builds ONNX models of ``--size-mib`` (default 1024) and ``--flat-size-mib`` (default
4096) MiB — the graph file and one external-data tensor file of random bytes, nothing
compresses — sets up a ceremony, a hub and a spoke with the real ``airlock`` CLI, then
measures each command in its own process, wall time and peak RSS:

* intake — ``airlock hub model add`` vs ``cp -r DIR && openssl dgst -sha256`` (info);
* export — ``airlock hub export --format 2`` (one volume) vs
  ``tar cf - DIR | age -r R > out.age``: at least 1.0x, at both sizes;
* import — ``airlock spoke import DIR`` vs ``age -d -i K out.age | tar xf -``: at least
  0.9x, at both sizes; ``… && openssl dgst -sha256 FILES`` (which hashes, as ours does)
  is printed next to it;
* fixed cost — the same commands on a 64 KiB model: at most 0.6 s each, the identity
  unlock included (the unlock alone, in a bare Python process, is printed);
* peak RSS — export and import at most 100 MiB at both sizes, and flat: the figure at
  the flat size at most 10 MiB above the one at the main size;
* parity — at the main size, the export cut by ``--volume-size`` into about 4 data
  volumes, with ``--parity 1`` and without: at most 1.3x; the import of the parity
  bundle with one data volume moved away (rebuilt from parity) and complete: at most 1.5x;
* resume — an import of the 4-volume bundle killed with SIGKILL halfway, then run
  again: the bytes it re-reads from the volume files, counted by strace, at most 5 %
  of what the first run had verified (``bundlebench/resume.py`` says how and why).

Information next to the targets: in the last round, one more export and import at each
size with ``--json``, split by their progress phases into seconds and peak RSS (before
the first phase, each phase, after the last: ``bundlebench/phases.py``), so that a
missed target says where the time or the memory goes.

How it is measured (a noisy 2-vCPU VM: compare within one run, never across runs):

* ``--repeat`` rounds (default 3); ours and the reference alternate which runs first.
  Seconds are the best (lowest) of the rounds, peak RSS the highest. ``sync`` runs
  before every measured command, and its input files are read once first: the page
  cache is warm for both sides (dropping it needs root).
* Peak RSS is ``ru_maxrss`` from ``wait4``: the largest of the process and of every
  descendant it waited for (for a shell pipeline, its largest stage, not the sum),
  taken by a small launcher so that this script's own size does not leak in
  (``measure.run_measured``; the floor, ~8 MiB, is printed).
* The references decrypt with their own ``age-keygen`` identity; the spoke's identity
  is sealed with the site passphrase (scrypt) and every ``airlock spoke import``
  unlocks it. Each import goes into a fresh copy of the newly initialised spoke home,
  so every round does a first import (blobs promoted into the store). Each round adds
  a new version of the model; the volume and parity exports pass ``--full`` (the
  round's first export carried that version already).
* Ours fsyncs what it writes; the reference pipelines do not.
* The load average at the start and at the end is printed (other work shares the CPUs).

Results go to ``OUT/results.json`` (default ``bench-out/``); the work directory
``OUT/bundle/`` is recreated on every run (its logs are kept). ``--quick`` is a smoke
run (24 and 48 MiB, one round) that a test runs: its ratios mean little.

Usage: ``python bench/bench_bundle.py [--size-mib 1024] [--flat-size-mib 4096]
[--repeat 3] [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bundlebench.commands import (
    Capabilities,
    Workspace,
    check_prerequisites,
    reference_identity,
    set_up_airlock,
    site_identity,
)
from bundlebench.model import TINY_BYTES, build_model
from bundlebench.report import notes, print_report, summarise
from bundlebench.resume import measure_resume
from bundlebench.rounds import Inputs, Scale, measure_big, measure_fixed_cost, measure_media
from bundlebench.runner import Bench
from bundlebench.targets import PASS, build_targets
from measure import MiB, rss_floor

ROOT = Path(__file__).resolve().parent.parent
QUICK = {"size_mib": 24, "flat_size_mib": 48, "repeat": 1}


@dataclass(frozen=True)
class Config:
    """What to run: the two model sizes, the rounds, where."""

    size_mib: int
    flat_size_mib: int
    repeat: int
    out: Path

    @property
    def work(self) -> Path:
        """The work directory (recreated)."""
        return self.out / "bundle"


def run(config: Config) -> dict[str, Any]:
    """Builds, sets up, measures; returns the results (also written to ``OUT/results.json``)."""
    load_start = list(os.getloadavg())
    work = config.work
    shutil.rmtree(work, ignore_errors=True)
    check_prerequisites(work, max(config.size_mib, config.flat_size_mib) * MiB)
    bench = Bench(work)
    print(f"building a {config.size_mib} MiB ONNX model in {work / 'model'} ...", flush=True)
    size = build_model(work / "model", config.size_mib * MiB)
    build_model(work / "tiny", TINY_BYTES)
    print("ceremony, hub and spoke ...", flush=True)
    set_up_airlock(bench, work)
    ws = Workspace(work, Capabilities.detect())
    key, recipient = reference_identity(work)
    identity, scrypt = site_identity(work)
    inputs = Inputs(work / "tiny", key, recipient, identity)
    (work / "bundles").mkdir()
    main = Scale(config.size_mib, work / "model", "bench", size, media=True)
    resume_bundle = None
    for round_no in range(config.repeat):
        print(f"{config.size_mib} MiB, round {round_no + 1}/{config.repeat} ...", flush=True)
        measure_fixed_cost(bench, ws, round_no, inputs)
        last = round_no == config.repeat - 1
        measure_big(bench, ws, main, round_no, inputs, last)
        if bench.group(main.group):
            resume_bundle = measure_media(bench, ws, main, round_no, keep=last) or resume_bundle
    if resume_bundle is not None:
        print("resume after kill -9 (traced) ...", flush=True)
        measure_resume(bench, ws, resume_bundle)
        shutil.rmtree(resume_bundle)
    elif bench.group("resume"):
        reason = bench.unmeasured.get("volumes and parity", "no multi-volume bundle")
        bench.give_up("resume", reason)
    shutil.rmtree(main.model)
    print(f"building a {config.flat_size_mib} MiB ONNX model ...", flush=True)
    flat_size = build_model(work / "flat-model", config.flat_size_mib * MiB)
    flat = Scale(config.flat_size_mib, work / "flat-model", "flat", flat_size, media=False)
    for round_no in range(config.repeat):
        print(f"{config.flat_size_mib} MiB, round {round_no + 1}/{config.repeat} ...", flush=True)
        measure_big(bench, ws, flat, round_no, inputs, round_no == config.repeat - 1)
    sizes = {config.size_mib: size, config.flat_size_mib: flat_size}
    summary = summarise(bench.runs, sizes, config.size_mib)
    targets = build_targets(
        bench.runs, bench.facts, bench.unmeasured, config.size_mib, config.flat_size_mib
    )
    results = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sizes_mib": [config.size_mib, config.flat_size_mib],
        "model_bytes": sizes,
        "repeat": config.repeat,
        "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "loadavg": {"start": load_start, "end": list(os.getloadavg())},
        "capabilities": vars(ws.caps),
        "method": "best seconds and highest peak RSS over the rounds; page cache warm",
        "runs": {k: {"seconds": r.seconds, "peak_rss_bytes": r.rss} for k, r in bench.runs.items()},
        "summary": summary,
        "facts": bench.facts,
        "unmeasured": bench.unmeasured,
        "targets": [vars(t) for t in targets],
        "notes": notes(summary, bench.facts, rss_floor(), scrypt),
        "passed": all(t.status == PASS for t in targets),
    }
    (config.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    remove_bulk_data(work)
    return results


def remove_bulk_data(work: Path) -> None:
    """Frees the disk: everything in the work directory except the logs."""
    for path in work.iterdir():
        if path.is_dir() and path.name != "logs":
            shutil.rmtree(path)
        elif path.is_file():
            path.unlink()


def main() -> None:
    """Runs the benchmark and prints the report; exits 1 when a target is not met."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="main model size (1024)")
    parser.add_argument(
        "--flat-size-mib", type=int, default=4096, help="model size for the flat-RSS run (4096)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 24/48 MiB, one round")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out", help="results directory")
    args = parser.parse_args()
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    if min(args.size_mib, args.flat_size_mib, args.repeat) < 1:
        parser.error("sizes and --repeat must be at least 1")
    config = Config(args.size_mib, args.flat_size_mib, args.repeat, args.out.resolve())
    results = run(config)
    print_report(results)
    print(f"\nresults: {config.out / 'results.json'}; logs: {config.work / 'logs'}")
    sys.exit(0 if results["passed"] else 1)


if __name__ == "__main__":
    main()
