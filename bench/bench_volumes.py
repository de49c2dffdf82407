"""The volume layer (bundle format v2) side by side with ``tar | age`` and ``age -d | tar x``.

One file of ``--size-mib`` MiB of random bytes (nothing compresses) in a work directory
under /tmp; its chunk index is made once, unmeasured (the hub makes it at intake). Each
measured command runs in its own process (wall time, peak RSS of that process via
``wait4``, see ``measure.run_measured``), best of ``--repeat`` rounds, ours and the
reference alternating which runs first, page cache warm (inputs read once before):

* write — ``write_series`` to one age volume (fsyncs it) vs ``tar cf - | age -r R > out``;
* read — ``Assembler.run`` + ``complete`` (decrypt, check every header and chunk hash,
  pwrite into ``.part``, fsync) vs ``age -d -i K out | tar xf -``;
  both references are also timed followed by ``sync FILE`` (ours fsyncs, they do not);
* parity — ``write_series`` in volumes of a quarter of the size with ``--parity 1``
  vs the same without parity;
* rebuild — reading that series with data volume 2 deleted vs reading it complete;
* durable checkpoints — the read again with an fdatasync of the ``.part`` files before
  every checkpoint (the alternative to trusting them on the same boot), as a cost ratio;
* resume — a read killed (SIGKILL, from inside, when half the volume was read), then a
  second read: the bytes it reads again, as a share of what the first had verified.

Targets (issue 14, 2 cores): write >= 1.0x, read >= 0.9x the reference; peak RSS
<= 100 MiB; parity write <= 1.3x write; rebuild read <= 1.5x complete read; resume <= 5 %.
:func:`run` returns the figures (the lead wires it into ``bench/bench_bundle.py``);
``main`` prints them and exits 1 when a target is missed.

Usage: ``python bench/bench_volumes.py [--size-mib 1024] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import MiB, mib_per_s, rss_floor, run_measured, shell

WORK = Path("/tmp/volumes-bench")
TARGETS = {
    "write_ratio": (">=", 1.0),
    "read_ratio": (">=", 0.9),
    "peak_rss_mib": ("<=", 100.0),
    "parity_cost": ("<=", 1.3),
    "rebuild_cost": ("<=", 1.5),
    "resume_reread_pct": ("<=", 5.0),
}


# -- the child process: one export or one import --------------------------------------


def _child_write(model: Path, out: Path, recipient: str, volume_size: int, parity: int) -> None:
    from airlock.bundles.chunks import ChunkIndex
    from airlock.bundles.volumes import (
        Layout,
        SeriesFile,
        SeriesSpec,
        new_name_key,
        new_series_id,
        write_series,
    )

    meta = json.loads((model.parent / "index.json").read_text())
    index = ChunkIndex.from_bytes(bytes.fromhex(meta["index"]))
    out.mkdir()
    key = new_name_key()
    spec = SeriesSpec(new_series_id(), (recipient,), (SeriesFile(index.sha256, model, index),))
    written = write_series(out, spec, key, volume_size or None, parity)
    doc = {
        "series": [written.series.to_dict()],
        "volumes": [v.to_dict() for v in written.volumes],
        "layout": Layout(key, (written.layout,)).to_bytes().hex(),
        "index": meta["index"],
    }
    (out.parent / f"{out.name}.json").write_text(json.dumps(doc))


def _child_read(bundle: Path, key_file: Path, state: Path, kill_at: float, durable: bool) -> None:
    from airlock.bundles.agestream import parse_identity
    from airlock.bundles.chunks import ChunkIndex
    from airlock.bundles.models import SeriesRecord, VolumeRecord
    from airlock.bundles.volumes import Assembler, AssemblyPlan, Layout, find_volumes

    doc = json.loads((bundle.parent / f"{bundle.name}.json").read_text())
    index = ChunkIndex.from_bytes(bytes.fromhex(doc["index"]))
    volumes = tuple(VolumeRecord.from_dict(v) for v in doc["volumes"])
    plan = AssemblyPlan(
        series=tuple(SeriesRecord.from_dict(s) for s in doc["series"]),
        volumes=volumes,
        layout=Layout.from_bytes(bytes.fromhex(doc["layout"])),
        indexes={index.sha256: index},
        wanted=frozenset({index.sha256}),
    )
    identity = parse_identity(key_file.read_text())
    state.mkdir(mode=0o700, exist_ok=True)
    counted = [0]
    limit = kill_at * sum(v.size for v in volumes if v.kind == "data")

    def on_read(count: int) -> None:
        counted[0] += count
        if kill_at and counted[0] >= limit:
            os.kill(os.getpid(), signal.SIGKILL)

    found = find_volumes([bundle], [v.name for v in volumes])
    with Assembler(
        plan, state, [identity], on_read=on_read, durable_checkpoints=durable
    ) as assembler:
        assembler.run(found)
        assembler.complete()
    (state / "bytes-read").write_text(str(counted[0]))


def child(argv: list[str]) -> None:
    """Entry point of the measured child processes."""
    if argv[0] == "write":
        _child_write(Path(argv[1]), Path(argv[2]), argv[3], int(argv[4]), int(argv[5]))
    else:
        _child_read(Path(argv[1]), Path(argv[2]), Path(argv[3]), float(argv[4]), len(argv) > 5)


# -- the parent: set-up, rounds, figures ------------------------------------------------


def _ours(*args: str | Path | int | float) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", *map(str, args)]


def _read_through(path: Path) -> None:
    for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
        with open(file, "rb", buffering=0) as handle:
            while handle.read(8 * MiB):
                pass


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def _setup(size: int) -> tuple[Path, Path, str]:
    from airlock.bundles.chunks import index_file

    _fresh(WORK).mkdir(parents=True)
    model = WORK / "model" / "model.bin"
    model.parent.mkdir()
    digest = hashlib.sha256()
    with open(model, "wb") as out:
        for _ in range(size // MiB):
            block = os.urandom(MiB)
            digest.update(block)
            out.write(block)
    index = index_file(model, digest.hexdigest(), size)
    (model.parent / "index.json").write_text(json.dumps({"index": index.to_bytes().hex()}))
    key = WORK / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return model, key, recipient


class Rounds:
    """Best seconds and highest peak RSS per label."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.rss: dict[str, int] = {}

    def measure(self, label: str, argv: list[str], before: Any = None) -> None:
        if before is not None:
            before()
        subprocess.run(["sync"], check=True)
        seconds, rss = run_measured(argv)
        self.seconds[label] = min(self.seconds.get(label, seconds), seconds)
        self.rss[label] = max(self.rss.get(label, 0), rss)


def run(size_mib: int = 1024, repeat: int = 3) -> dict[str, Any]:
    """Measures everything (see the module docstring) and returns the figures."""
    size = size_mib * MiB
    model, key, recipient = _setup(size)
    r = Rounds()
    one, par, nopar = WORK / "one", WORK / "par", WORK / "nopar"
    ref_age, dest, state = WORK / "ref.age", WORK / "ref-x", WORK / "state"
    tar_age = f"tar cf - -C {model.parent} model.bin | age -r {recipient} > {ref_age}"
    age_tar = f"mkdir -p {dest} && age -d -i {key} {ref_age} | tar xf - -C {dest}"
    quarter = size // 4 + 4 * MiB

    def write(out: Path, volume_size: int, parity: int) -> list[str]:
        return _ours("write", model, out, recipient, volume_size, parity)

    def read(bundle: Path) -> list[str]:
        return _ours("read", bundle, key, state, 0)

    def clean(*paths: Path) -> Any:
        return lambda: [_fresh(p) for p in paths]

    for round_no in range(repeat):
        flip = round_no % 2 == 1
        _read_through(model)
        pair = [("write", write(one, 0, 0), clean(one)), ("write_ref", shell(tar_age), None)]
        for label, argv, before in pair[::-1] if flip else pair:
            r.measure(label, argv, before)
        r.measure("write_ref_sync", shell(f"{tar_age} && sync {ref_age}"))
        r.measure("write_parity", write(par, quarter, 1), clean(par))
        r.measure("write_noparity", write(nopar, quarter, 0), clean(nopar))
        _read_through(one)
        _read_through(ref_age)
        pair = [("read", read(one), clean(state)), ("read_ref", shell(age_tar), clean(dest))]
        for label, argv, before in pair[::-1] if flip else pair:
            r.measure(label, argv, before)
        r.measure("read_ref_sync", shell(f"{age_tar} && sync {dest}/model.bin"), clean(dest))
        r.measure("read_durable", [*read(one), "durable"], clean(state))
        r.measure("read", read(one), clean(state))  # again, away from the reference's run
        _read_through(par)
        r.measure("read_par", read(par), clean(state))
        lost = next(par.glob("*-data-002-of-*"))
        hidden = WORK / "hidden.age"
        lost.rename(hidden)
        try:
            r.measure("read_rebuild", read(par), clean(state))
        finally:
            hidden.rename(lost)
    resume = _resume(one, key, state)
    shutil.rmtree(dest, ignore_errors=True)
    return _figures(r, size, resume)


def _resume(bundle: Path, key: Path, state: Path) -> dict[str, Any]:
    _fresh(state)
    first = subprocess.run(_ours("read", bundle, key, state, 0.5), capture_output=True)
    slots = [
        (state / name).read_bytes() for name in ("state.0", "state.1") if (state / name).exists()
    ]
    newest = max(slots, key=lambda data: int(data.split(b" ", 2)[1]))
    doc = json.loads(newest.partition(b"\n")[2])
    import base64

    verified_entries = sum(
        bin(b).count("1") for v in doc["volumes"].values() for b in base64.b64decode(v["done"])
    )
    subprocess.run(_ours("read", bundle, key, state, 0), check=True)
    second = int((state / "bytes-read").read_text())
    total = sum(p.stat().st_size for p in bundle.iterdir())
    verified = verified_entries * MiB
    unverified = total - verified
    reread = max(0, second - unverified)
    return {
        "killed": first.returncode == -signal.SIGKILL,
        "verified_before_mib": round(verified / MiB, 1),
        "second_read_mib": round(second / MiB, 1),
        "reread_mib": round(reread / MiB, 2),
        "resume_reread_pct": round(100 * reread / max(verified, 1), 2),
    }


def _figures(r: Rounds, size: int, resume: dict[str, Any]) -> dict[str, Any]:
    s = r.seconds
    rate = {k: round(mib_per_s(size, v), 1) for k, v in s.items()}
    figures: dict[str, Any] = {
        "size_mib": size // MiB,
        "seconds": {k: round(v, 3) for k, v in s.items()},
        "mib_per_s": rate,
        "peak_rss_mib": {k: round(v / MiB, 1) for k, v in r.rss.items()},
        "rss_floor_mib": round(rss_floor() / MiB, 1),
        "write_ratio": round(s["write_ref"] / s["write"], 3),
        "write_ratio_vs_synced_ref": round(s["write_ref_sync"] / s["write"], 3),
        "read_ratio": round(s["read_ref"] / s["read"], 3),
        "read_ratio_vs_synced_ref": round(s["read_ref_sync"] / s["read"], 3),
        "parity_cost": round(s["write_parity"] / s["write_noparity"], 3),
        "rebuild_cost": round(s["read_rebuild"] / s["read_par"], 3),
        "durable_checkpoint_cost": round(s["read_durable"] / s["read"], 3),
        "resume": resume,
    }
    ours = [k for k in r.rss if "ref" not in k]
    figures["ours_peak_rss_mib"] = round(max(r.rss[k] for k in ours) / MiB, 1)
    figures["missed"] = _missed(figures)
    return figures


def _missed(f: dict[str, Any]) -> list[str]:
    values = {
        "write_ratio": f["write_ratio"],
        "read_ratio": f["read_ratio"],
        "peak_rss_mib": f["ours_peak_rss_mib"],
        "parity_cost": f["parity_cost"],
        "rebuild_cost": f["rebuild_cost"],
        "resume_reread_pct": f["resume"]["resume_reread_pct"],
    }
    missed = []
    for name, (op, target) in TARGETS.items():
        value = values[name]
        if (op == ">=" and value < target) or (op == "<=" and value > target):
            missed.append(f"{name} {value} (target {op} {target})")
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    figures = run(args.size_mib, args.repeat)
    print(json.dumps(figures, indent=2))
    for line in figures["missed"]:
        print("MISSED:", line)
    shutil.rmtree(WORK, ignore_errors=True)
    sys.exit(1 if figures["missed"] else 0)


if __name__ == "__main__":
    main()
