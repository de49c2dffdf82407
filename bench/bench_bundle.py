"""`make bench`: export and import of a big model, side by side with the stock tools.

Builds an ONNX model of ``--size-mib`` MiB (default 1024): a directory with the graph
file and one external-data tensor file of random bytes (nothing compresses). Sets up a
ceremony, a hub and a spoke with the real ``airlock`` CLI, then measures each command
in its own process, wall time and peak RSS, against a reference on the same data:

* intake — ``airlock hub model add`` vs ``cp -r DIR && openssl dgst -sha256``;
* export — ``airlock hub export`` vs ``tar cf - DIR | age -r R > out.age``;
* import — ``airlock spoke import`` vs
  ``age -d -i K out.age | tar xf - && openssl dgst -sha256 FILES``.

How it is measured (a noisy 2-vCPU VM: compare within one run, never across runs):

* ``--repeat`` rounds; ours and the reference alternate which runs first. Seconds are
  the best (lowest) of the rounds, peak RSS the highest. ``sync`` runs before every
  measured command, and its input files are read once first: the page cache is warm
  for both sides (dropping it needs root).
* Peak RSS is ``ru_maxrss`` from ``wait4``: the largest of the process and of every
  descendant it waited for (for a shell pipeline, its largest stage, not the sum),
  taken by a small launcher so that this script's own size does not leak in
  (``measure.run_measured``; the floor, ~8 MiB, is printed).
* The reference decrypts with its own ``age-keygen`` identity; the spoke's identity is
  sealed with the site passphrase (scrypt, 64 MiB) and every ``airlock spoke import``
  unlocks it.
  That and the other fixed costs (Python start-up, key loading, TUF signing and
  verification, database) are measured in every round with the same commands on a
  tiny model, and the unlock alone in a bare Python process; "net" throughput is
  size / (seconds − tiny seconds).
* Each import goes into a fresh copy of the newly initialised spoke home, so every
  round does a first import (blobs promoted into the store).
* Ours fsyncs what it writes; the reference pipelines do not.

Targets (the issue): peak RSS under 200 MiB for export and for import; import
throughput at least 0.7x the reference pipeline, end to end; a fixed cost of at most
0.6 s for each of ``airlock hub export`` and ``airlock spoke import`` on the 64 KiB
model, identity unlock included (issue 14). A missed target makes the exit status 1.
Results also go to ``bench-out/results.json``; the work directory ``bench-out/bundle/``
is recreated on every run (its logs are kept).

Usage: ``python bench/bench_bundle.py [--size-mib 1024] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import MiB, mib_per_s, rss_floor, run_measured, shell

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench-out" / "bundle"
RESULTS = ROOT / "bench-out" / "results.json"
AIRLOCK = str(Path(sys.executable).parent / "airlock")
SITE = "bench-site"
TOOLS = ("age", "age-keygen", "openssl", "tar", "cp")
ROW_BYTES = 16384 * 4  # one row of the float32 weight matrix
TINY_BYTES = ROW_BYTES  # the model that measures the fixed cost: one row
RSS_TARGET_MIB = 200.0
IMPORT_RATIO_TARGET = 0.7
FIXED_COST_TARGET_S = 0.6
"""Seconds each of hub export and spoke import may take on the tiny model (issue 14)."""
ENV = {
    **os.environ,
    "AIRLOCK_CEREMONY_PASSPHRASE": "bench officers' passphrase",
    "AIRLOCK_HUB_PASSPHRASE": "bench hub passphrase",
    "AIRLOCK_SPOKE_PASSPHRASE": "bench site passphrase",
    "AIRLOCK_PRINCIPAL": "bench",
    "COLUMNS": "120",
}
OPS = ("intake", "export", "import")
TITLES = {
    "intake ours": "airlock hub model add",
    "intake reference": "cp -r && openssl dgst -sha256",
    "export ours": "airlock hub export",
    "export reference": "tar cf - | age -r",
    "import ours": "airlock spoke import",
    "import reference": "age -d | tar xf - && openssl dgst",
    "unlock tiny": "  of which: identity unlock (alone)",
}


# -- the model -------------------------------------------------------------------------


def build_model(directory: Path, size_bytes: int) -> int:
    """Writes a valid ONNX model with external data (``model.onnx`` + ``weights.bin``).

    One MatMul with a float32 weight matrix of ``size_bytes`` (rounded down to whole
    64 KiB rows) stored as external data: random bytes, written 1 MiB at a time.

    Returns:
        The total size of the model's files in bytes.
    """
    import onnx
    from onnx import TensorProto, helper

    directory.mkdir(parents=True)
    columns = ROW_BYTES // 4
    rows = max(size_bytes // ROW_BYTES, 1)
    weights_bytes = rows * ROW_BYTES
    with open(directory / "weights.bin", "wb") as out:
        for offset in range(0, weights_bytes, MiB):
            out.write(os.urandom(min(MiB, weights_bytes - offset)))
    weights = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[rows, columns])
    weights.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "weights.bin"), ("offset", "0"), ("length", weights_bytes)):
        weights.external_data.add(key=key, value=str(value))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "bench-matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, rows])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, columns])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # onnx writes IR 14 by default, which the site's onnxruntime refuses
    onnx.save_model(model, str(directory / "model.onnx"))
    onnx.checker.check_model(str(directory / "model.onnx"))
    return tree_size(directory)


def tree_size(path: Path) -> int:
    """Bytes in the regular files under ``path``."""
    return sum(p.stat().st_size for p in files_under(path))


def files_under(path: Path) -> Iterator[Path]:
    """``path`` itself when it is a file, else every regular file below it."""
    if path.is_file():
        yield path
    else:
        yield from sorted(p for p in path.rglob("*") if p.is_file())


# -- running commands ------------------------------------------------------------------


def airlock(*args: str | Path) -> list[str]:
    """argv of an ``airlock`` command."""
    return [AIRLOCK, *(str(a) for a in args)]


@dataclass(frozen=True)
class Command:
    """A measured command.

    Attributes:
        label: Key in the results, e.g. ``"export ours"``.
        argv: What to run (in the work directory).
        warm: Inputs to read once before the run, so that the page cache is warm.
        prepare: Unmeasured set-up run first (e.g. a fresh output directory).
    """

    label: str
    argv: list[str]
    warm: tuple[Path, ...] = ()
    prepare: Callable[[], None] | None = None


@dataclass
class Runs:
    """Every measurement of one command."""

    seconds: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)

    @property
    def best(self) -> float:
        """The lowest wall time."""
        return min(self.seconds)

    @property
    def peak_rss_mib(self) -> float:
        """The highest peak RSS, in MiB."""
        return max(self.rss) / MiB


class Bench:
    """Runs commands with their output logged and keeps the measurements."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True)
        self.runs: dict[str, Runs] = {}
        self._count = 0

    def _log(self, label: str) -> Path:
        self._count += 1
        return self.logs / f"{self._count:03d}-{label.replace(' ', '-')}.log"

    def run(self, label: str, argv: list[str]) -> None:
        """Runs an unmeasured set-up command; exits with its log on failure."""
        log = self._log(label)
        with open(log, "wb") as out:
            proc = subprocess.run(argv, env=ENV, cwd=self.work, stdout=out, stderr=out)
        if proc.returncode:
            fail(f"{label} failed (exit {proc.returncode})", log)

    def measure(self, command: Command) -> None:
        """Prepares, warms the page cache, syncs, then runs and records ``command``."""
        if command.prepare is not None:
            command.prepare()
        for path in command.warm:
            read_through(path)
        os.sync()
        log = self._log(command.label)
        with open(log, "wb") as out:
            try:
                seconds, rss = run_measured(command.argv, env=ENV, cwd=self.work, output=out)
            except subprocess.CalledProcessError as exc:
                fail(f"{command.label} failed (exit {exc.returncode})", log)
        runs = self.runs.setdefault(command.label, Runs())
        runs.seconds.append(seconds)
        runs.rss.append(rss)

    def measure_pair(self, ours: Command, reference: Command, reference_first: bool) -> None:
        """Measures ours and the reference, in the order given."""
        for command in (reference, ours) if reference_first else (ours, reference):
            self.measure(command)


def read_through(path: Path) -> None:
    """Reads every file under ``path`` once (1 MiB buffers), to have it in the page cache."""
    buf = bytearray(MiB)
    for file in files_under(path):
        with open(file, "rb", buffering=0) as src:
            while src.readinto(buf):
                pass


def fail(message: str, log: Path | None = None) -> NoReturn:
    """Prints ``message`` (and the end of ``log``) and exits with status 2."""
    print(f"bench: {message}", file=sys.stderr)
    if log is not None:
        print(f"--- {log} (last lines)", file=sys.stderr)
        print("\n".join(log.read_text(errors="replace").splitlines()[-30:]), file=sys.stderr)
    raise SystemExit(2)


def fresh_dir(path: Path) -> None:
    """Removes ``path`` and creates it empty."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


# -- set-up ----------------------------------------------------------------------------


def check_prerequisites(size_bytes: int) -> None:
    """Exits with a clear message when a stock tool or disk space is missing."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        fail(
            f"{', '.join(missing)} not found on PATH; the benchmark compares against them. "
            "Install them with `make system-deps` (Debian packages age, openssl)."
        )
    WORK.parent.mkdir(parents=True, exist_ok=True)
    needed = 9 * size_bytes  # model, hub store + staging, bundle, spoke, 3 reference copies
    free = shutil.disk_usage(WORK.parent).free
    if free < needed:
        fail(f"{free / MiB:.0f} MiB free under {WORK.parent}; the run needs ~{needed / MiB:.0f}")


def set_up_airlock(bench: Bench) -> None:
    """Ceremony, hub, spoke and site registration; keeps a copy of the fresh spoke home."""
    bench.run("ceremony init", airlock("ceremony", "init", "--out", "ceremony"))
    bench.run("hub init", airlock("hub", "init", "--home", "hub", "--from", "ceremony"))
    bench.run(
        "spoke init",
        airlock(
            "spoke",
            "init",
            "--home",
            "spoke",
            "--site-id",
            SITE,
            "--image-root",
            "ceremony/image/1.root.json",
            "--director-root",
            "ceremony/director/1.root.json",
        ),
    )
    bench.run(
        "hub site add",
        airlock("hub", "site", "add", "--home", "hub", "--identity", "spoke/site-identity.json"),
    )
    shutil.copytree(WORK / "spoke", WORK / "spoke-fresh", symlinks=True)


def restore_spoke() -> None:
    """Puts the newly initialised spoke home back (nothing imported yet)."""
    shutil.rmtree(WORK / "spoke")
    shutil.copytree(WORK / "spoke-fresh", WORK / "spoke", symlinks=True)


def reference_identity() -> tuple[Path, str]:
    """A plain ``age-keygen`` identity for the reference pipeline: (key file, recipient)."""
    key = WORK / "reference-key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return key, recipient


def site_identity() -> tuple[Path, dict[str, int]]:
    """The spoke's sealed age identity file and its scrypt parameters (n, r, p)."""
    path = WORK / "spoke-fresh" / "keys" / "site-age-identity.sealed"
    header = json.loads(path.read_bytes())["header"]
    return path, {k: int(header[k]) for k in ("n", "r", "p")}


# -- the measurements ------------------------------------------------------------------


def model_add(name: str, version: str, model: Path, label: str) -> Command:
    """``airlock hub model add``, with the model's files warm."""
    argv = airlock("hub", "model", "add", "--home", "hub", name, version, model)
    return Command(label, argv, warm=(model,))


def hub_export(bundle: Path, label: str) -> Command:
    """``airlock hub export`` of the site's next bundle, with the hub's blobs warm."""
    argv = airlock("hub", "export", "--home", "hub", "--site", SITE, "--out", bundle)
    return Command(label, argv, warm=(WORK / "hub" / "blobs",))


def spoke_import(bundle: Path, label: str) -> Command:
    """``airlock spoke import`` into a fresh spoke home, with the bundle warm."""
    argv = airlock("spoke", "import", "--home", "spoke", bundle)
    return Command(label, argv, warm=(bundle,), prepare=restore_spoke)


def reference_intake(model: Path, dest: Path) -> Command:
    """``cp -r`` the model, then ``openssl dgst -sha256`` the copies."""
    script = f"cp -r {q(model)} {q(dest)} && openssl dgst -sha256 {q(dest)}/* > /dev/null"
    return Command(
        "intake reference",
        shell(script),
        warm=(model,),
        prepare=lambda: shutil.rmtree(dest, ignore_errors=True),
    )


def reference_export(model: Path, payload: Path, recipient: str) -> Command:
    """``tar cf - DIR | age -r RECIPIENT > payload``."""
    script = f"tar cf - -C {q(model.parent)} {q(model.name)} | age -r {q(recipient)} > {q(payload)}"
    return Command("export reference", shell(script), warm=(model,))


def reference_import(payload: Path, key: Path, dest: Path, model_name: str) -> Command:
    """``age -d | tar xf -`` into ``dest``, then ``openssl dgst -sha256`` the files."""
    script = (
        f"age -d -i {q(key)} {q(payload)} | tar xf - -C {q(dest)} && "
        f"openssl dgst -sha256 {q(dest / model_name)}/* > /dev/null"
    )
    return Command(
        "import reference", shell(script), warm=(payload,), prepare=lambda: fresh_dir(dest)
    )


def q(value: str | Path) -> str:
    """Shell-quoted ``value``."""
    return shlex.quote(str(value))


UNLOCK_SCRIPT = """
import os, sys
from airlock.bundles.keys._sealed import unseal
with open(sys.argv[1], "rb") as identity:
    unseal(identity.read(), os.environ["AIRLOCK_SPOKE_PASSPHRASE"], "the site's age identity")
"""


@dataclass(frozen=True)
class Inputs:
    """What every round works on.

    Attributes:
        model: The big model's directory.
        tiny: The tiny model's directory (for the fixed cost).
        key: The reference pipeline's age identity file.
        recipient: Its recipient.
        site_identity: The spoke's sealed age identity.
    """

    model: Path
    tiny: Path
    key: Path
    recipient: str
    site_identity: Path


def assign_only(bench: Bench, name: str, version: str, previous: str | None) -> None:
    """Makes ``name@version`` the site's only assignment (``previous`` is unassigned)."""
    if previous is not None:
        bench.run("unassign", airlock("hub", "unassign", "--home", "hub", SITE, previous))
    bench.run("assign", airlock("hub", "assign", "--home", "hub", SITE, name, version))


def measure_fixed_cost(bench: Bench, round_no: int, inputs: Inputs) -> None:
    """The fixed costs: the identity unlock alone, and the airlock commands on the tiny model."""
    argv = [sys.executable, "-c", UNLOCK_SCRIPT, str(inputs.site_identity)]
    bench.measure(Command("unlock tiny", argv))
    version = f"1.0.{round_no}"
    bundle = WORK / "bundles" / f"tiny-{round_no}"
    bench.measure(model_add("tiny", version, inputs.tiny, "intake tiny"))
    assign_only(bench, "tiny", version, previous=None if round_no == 0 else "bench")
    bench.measure(hub_export(bundle, "export tiny"))
    bench.measure(spoke_import(bundle, "import tiny"))
    shutil.rmtree(bundle)


def measure_big(bench: Bench, round_no: int, inputs: Inputs) -> None:
    """Intake, export and import of the big model, ours and the reference.

    Odd rounds run the reference first.
    """
    ref = WORK / "reference"
    ref.mkdir()
    version = f"1.0.{round_no}"
    bundle = WORK / "bundles" / f"model-{round_no}"
    payload = ref / "payload.age"
    ref_first = round_no % 2 == 1
    bench.measure_pair(
        model_add("bench", version, inputs.model, "intake ours"),
        reference_intake(inputs.model, ref / "intake"),
        ref_first,
    )
    assign_only(bench, "bench", version, previous="tiny")
    bench.measure_pair(
        hub_export(bundle, "export ours"),
        reference_export(inputs.model, payload, inputs.recipient),
        ref_first,
    )
    bench.measure_pair(
        spoke_import(bundle, "import ours"),
        reference_import(payload, inputs.key, ref / "import", inputs.model.name),
        ref_first,
    )
    shutil.rmtree(bundle)
    shutil.rmtree(ref)
    restore_spoke()


# -- results ---------------------------------------------------------------------------


def summarise(runs: dict[str, Runs], size: int) -> dict[str, dict[str, Any]]:
    """Seconds, MiB/s, peak RSS MiB and ratio to the reference, per command and kind.

    Kinds: ``ours``, ``reference``, ``tiny`` (ours on the tiny model: the fixed cost)
    and ``net`` (ours minus tiny). The ratio is reference seconds / our seconds, a
    throughput ratio (above 1 is faster). Values that do not apply are None.
    """
    summary: dict[str, dict[str, Any]] = {}
    for op in OPS:
        ours, ref, tiny = runs[f"{op} ours"], runs[f"{op} reference"], runs[f"{op} tiny"]
        net = ours.best - tiny.best
        rows: dict[str, tuple[float | None, float | None, int]] = {
            "ours": (ours.best, ours.peak_rss_mib, size),
            "reference": (ref.best, ref.peak_rss_mib, size),
            "tiny": (tiny.best, tiny.peak_rss_mib, 0),
            "net": (net if net > 0 else None, None, size),
        }
        for kind, (seconds, rss, data) in rows.items():
            summary[f"{op} {kind}"] = {
                "seconds": _rounded(seconds, 3),
                "mib_per_s": _rounded(mib_per_s(data, seconds), 1) if seconds and data else None,
                "peak_rss_mib": _rounded(rss, 1),
                "ratio_to_reference": (
                    _rounded(ref.best / seconds, 3) if seconds and kind in ("ours", "net") else None
                ),
            }
    if "unlock tiny" in runs:
        unlock = runs["unlock tiny"]
        summary["unlock tiny"] = {
            "seconds": _rounded(unlock.best, 3),
            "mib_per_s": None,
            "peak_rss_mib": _rounded(unlock.peak_rss_mib, 1),
            "ratio_to_reference": None,
        }
    return summary


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def check_targets(summary: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, each with its measured value and verdict."""
    targets = []
    for op in ("export", "import"):
        rss = summary[f"{op} ours"]["peak_rss_mib"]
        targets.append(
            {
                "target": f"{op} peak RSS < {RSS_TARGET_MIB:.0f} MiB",
                "value": f"{rss:.1f} MiB",
                "passed": rss < RSS_TARGET_MIB,
            }
        )
    ratio = summary["import ours"]["ratio_to_reference"]
    targets.append(
        {
            "target": f"import throughput >= {IMPORT_RATIO_TARGET}x reference, end to end",
            "value": f"{ratio:.2f}x",
            "passed": ratio >= IMPORT_RATIO_TARGET,
        }
    )
    export_s, import_s = (summary[f"{op} tiny"]["seconds"] for op in ("export", "import"))
    targets.append(
        {
            "target": f"fixed cost per command, {TINY_BYTES >> 10} KiB model",
            "value": f"hub export {export_s:.2f} s, spoke import {import_s:.2f} s "
            f"(target ≤ {FIXED_COST_TARGET_S} s)",
            "passed": max(export_s, import_s) <= FIXED_COST_TARGET_S,
        }
    )
    return targets


def notes(summary: dict[str, dict[str, Any]], floor: int, scrypt: dict[str, int]) -> list[str]:
    """What the targets alone do not say: memory growth, net throughput, the key unlock."""
    lines = []
    for op in ("export", "import"):
        growth = summary[f"{op} ours"]["peak_rss_mib"] - summary[f"{op} tiny"]["peak_rss_mib"]
        lines.append(f"{op} peak RSS, big model minus tiny model: {growth:+.1f} MiB")
    net = summary["import net"]
    if net["ratio_to_reference"] is not None:
        lines.append(
            f"import throughput net of the fixed cost: {net['mib_per_s']:.0f} MiB/s, "
            f"{net['ratio_to_reference']:.2f}x reference"
        )
    unlock = summary.get("unlock tiny")
    if unlock is not None:
        lines.append(
            f"every import unlocks the spoke's sealed age identity: scrypt N = {scrypt['n']}, "
            f"r = {scrypt['r']}, p = {scrypt['p']} "
            f"({128 * scrypt['r'] * scrypt['n'] / MiB:.0f} MiB of scrypt state, fixed); "
            f"alone it took {unlock['seconds']:.2f} s and peaked at "
            f"{unlock['peak_rss_mib']:.0f} MiB, whatever the bundle size (the import runs it "
            "on a second thread while it loads its modules)"
        )
    lines.append(f"peak RSS is resolved down to {floor / MiB:.1f} MiB (the measuring launcher)")
    return lines


def print_report(results: dict[str, Any]) -> None:
    """Prints the table, the verdicts and the notes."""
    summary = results["summary"]
    print(
        f"\nbundle benchmark: {results['model_bytes'] / MiB:.0f} MiB ONNX model "
        f"(graph + external data), best of {results['repeat']} round(s), page cache warm, "
        f"{results['created']}"
    )
    print(
        f"{'operation':9} {'command':34} {'seconds':>8} {'MiB/s':>8} "
        f"{'peak RSS MiB':>13} {'ratio to ref':>13}"
    )
    sections = (
        ("", ("ours", "reference")),
        (f"fixed cost: the same commands on a {TINY_BYTES >> 10} KiB model", ("tiny",)),
        ("net: seconds on the big model minus seconds on the tiny one", ("net",)),
    )
    for title, kinds in sections:
        if title:
            print(title)
        for op in OPS:
            for kind in kinds:
                command = TITLES[f"{op} {'reference' if kind == 'reference' else 'ours'}"]
                print(f"{op:9} {command:34} {_row(summary[f'{op} {kind}'])}")
                if kind == "tiny" and op == "import" and "unlock tiny" in summary:
                    print(f"{'':9} {TITLES['unlock tiny']:34} {_row(summary['unlock tiny'])}")
    print("ratio to ref = reference seconds / our seconds (a throughput ratio; > 1 is faster).")
    print("ours fsyncs its output; the reference pipelines do not.\n")
    for target in results["targets"]:
        verdict = "PASS" if target["passed"] else "FAIL"
        print(f"{verdict}  {target['target']}: {target['value']}")
    for line in results["notes"]:
        print(f"info  {line}")


def _row(row: dict[str, Any]) -> str:
    def cell(value: float | None, spec: str, suffix: str = "") -> str:
        return "n/a" if value is None else format(value, spec) + suffix

    return (
        f"{cell(row['seconds'], '.2f'):>8} {cell(row['mib_per_s'], '.0f'):>8} "
        f"{cell(row['peak_rss_mib'], '.1f') if row['peak_rss_mib'] else '':>13} "
        f"{cell(row['ratio_to_reference'], '.2f', 'x') if row['ratio_to_reference'] else '':>13}"
    )


def remove_bulk_data() -> None:
    """Frees the disk: everything in the work directory except the logs."""
    for path in WORK.iterdir():
        if path.is_dir() and path.name != "logs":
            shutil.rmtree(path)
        elif path.is_file():
            path.unlink()


def run(size_mib: int, repeat: int) -> dict[str, Any]:
    """Builds, sets up, measures; returns the results (also written to ``RESULTS``)."""
    shutil.rmtree(WORK, ignore_errors=True)
    check_prerequisites(size_mib * MiB)
    bench = Bench(WORK)
    print(f"building a {size_mib} MiB ONNX model in {WORK / 'model'} ...", flush=True)
    size = build_model(WORK / "model", size_mib * MiB)
    build_model(WORK / "tiny", TINY_BYTES)
    print("ceremony, hub and spoke ...", flush=True)
    set_up_airlock(bench)
    key, recipient = reference_identity()
    identity, scrypt = site_identity()
    inputs = Inputs(WORK / "model", WORK / "tiny", key, recipient, identity)
    for round_no in range(repeat):
        print(f"round {round_no + 1}/{repeat} ...", flush=True)
        measure_fixed_cost(bench, round_no, inputs)
        measure_big(bench, round_no, inputs)
    summary = summarise(bench.runs, size)
    targets = check_targets(summary)
    results = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model_bytes": size,
        "repeat": repeat,
        "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "method": "best seconds and highest peak RSS over the rounds; page cache warm",
        "runs": {k: {"seconds": r.seconds, "peak_rss_bytes": r.rss} for k, r in bench.runs.items()},
        "summary": summary,
        "targets": targets,
        "notes": notes(summary, rss_floor(), scrypt),
        "passed": all(t["passed"] for t in targets),
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    remove_bulk_data()
    return results


def main() -> None:
    """Runs the benchmark and prints the report; exits 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="model size (default 1024)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    args = parser.parse_args()
    if args.size_mib < 1 or args.repeat < 1:
        parser.error("--size-mib and --repeat must be at least 1")
    results = run(args.size_mib, args.repeat)
    print_report(results)
    print(f"\nresults: {RESULTS}; logs: {WORK / 'logs'}")
    sys.exit(0 if results["passed"] else 1)


if __name__ == "__main__":
    main()
