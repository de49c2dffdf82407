"""Benchmark of the payload layer against the stock tools, side by side in one run.

Makes (or reuses) a random blob under ``bench-out/payload/`` and measures, each in
its own process (so peak RSS is per process):

* export — ours: ``write_payload`` (tar -> age -> sha256 -> fsync'd file);
  reference: ``tar cf - blob | age -r R > out``;
* import — ours: ``read_payload`` (age -d -> strict tar -> sha256 -> fsync'd blob);
  reference: ``age -d -i K out | tar xf - && openssl dgst -sha256 blob``.

Usage: ``python bench/bench_payload.py [--size-mib 1024] [--repeat 3]``. The blob, its
hash and the age key are kept for the next run; the outputs are removed.
The ``_child`` sub-command is the measured worker; it is not meant to be run by hand.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import MiB, median, mib_per_s, run_measured, shell

OUT = Path(__file__).resolve().parent.parent / "bench-out" / "payload"


def _child(argv: list[str]) -> None:
    from pyrage import x25519

    from airlock.bundles.bundle import BlobSource, open_parts, read_payload, write_payload

    mode, *rest = argv
    if mode == "export":
        blob, sha, size, out_dir, recipient = rest
        write_payload(Path(out_dir), [], [BlobSource(sha, Path(blob), int(size))], [recipient])
    elif mode == "import":
        payload, key_file, dest, sha, size = rest
        identity = x25519.Identity.from_str(_secret_line(Path(key_file)))
        result = read_payload(
            open_parts([Path(payload)]), [identity], Path(dest), lambda _: {sha: int(size)}
        )
        assert list(result.blobs) == [sha]
    else:
        raise SystemExit(f"unknown child mode {mode}")


def _secret_line(key_file: Path) -> str:
    for line in key_file.read_text().splitlines():
        if line.startswith("AGE-SECRET-KEY-"):
            return line
    raise SystemExit(f"no age identity in {key_file}")


def _prepare(size_mib: int) -> tuple[Path, str, Path, str]:
    OUT.mkdir(parents=True, exist_ok=True)
    blob = OUT / f"blob-{size_mib}m.bin"
    sha_file = blob.with_suffix(".sha256")
    if not blob.exists() or blob.stat().st_size != size_mib * MiB:
        print(f"making a {size_mib} MiB random blob in {blob} ...", flush=True)
        with open(blob, "wb") as out, open("/dev/urandom", "rb") as rnd:
            for _ in range(size_mib):
                out.write(rnd.read(MiB))
        sha_file.unlink(missing_ok=True)
    if not sha_file.exists():
        digest = hashlib.sha256()
        with open(blob, "rb") as src:
            while chunk := src.read(MiB):
                digest.update(chunk)
        sha_file.write_text(digest.hexdigest())
    key_file = OUT / "key.txt"
    if not key_file.exists():
        subprocess.run(["age-keygen", "-o", str(key_file)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(key_file)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return blob, sha_file.read_text().strip(), key_file, recipient


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def main() -> None:
    """Runs the benchmark and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    blob, sha, key_file, recipient = _prepare(args.size_mib)
    size = blob.stat().st_size
    me = [sys.executable, str(Path(__file__).resolve()), "_child"]
    ours_out, ref_out = OUT / "ours-export", OUT / "ref-export"
    runs: dict[str, list[tuple[float, int]]] = {}

    def measure(label: str, argv: list[str]) -> None:
        runs.setdefault(label, []).append(run_measured(argv))

    for round_no in range(args.repeat):
        print(f"round {round_no + 1}/{args.repeat} ...", flush=True)
        _fresh(ours_out)
        measure("export ours", [*me, "export", str(blob), sha, str(size), str(ours_out), recipient])
        _fresh(ref_out)
        measure(
            "export reference",
            shell(f"tar cf - -C {blob.parent} {blob.name} | age -r {recipient} > {ref_out}/p.age"),
        )
        dest = _fresh(OUT / "ours-import")
        payload = ours_out / "payload.age"
        measure(
            "import ours", [*me, "import", str(payload), str(key_file), str(dest), sha, str(size)]
        )
        dest = _fresh(OUT / "ref-import")
        measure(
            "import reference",
            shell(
                f"age -d -i {key_file} {ref_out}/p.age | tar xf - -C {dest} "
                f"&& openssl dgst -sha256 {dest}/{blob.name} > /dev/null"
            ),
        )
    for path in (ours_out, ref_out, OUT / "ours-import", OUT / "ref-import"):
        shutil.rmtree(path, ignore_errors=True)
    _report(runs, size, args.repeat)


def _report(runs: dict[str, list[tuple[float, int]]], size: int, repeat: int) -> None:
    print(
        f"\npayload benchmark: {size / MiB:.0f} MiB blob, median of {repeat} run(s), "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}"
    )
    print(f"{'':18} {'seconds':>8} {'MiB/s':>8} {'peak RSS MiB':>13} {'ours/ref':>9}")
    for op in ("export", "import"):
        ref_seconds = median([s for s, _ in runs[f"{op} reference"]])
        for who in ("ours", "reference"):
            seconds = median([s for s, _ in runs[f"{op} {who}"]])
            rss = max(r for _, r in runs[f"{op} {who}"]) / MiB
            ratio = f"{ref_seconds / seconds:8.2f}x" if who == "ours" else ""
            print(
                f"{op + ' ' + who:18} {seconds:8.2f} {mib_per_s(size, seconds):8.0f} "
                f"{rss:13.1f} {ratio:>9}"
            )
    print("ours/ref = throughput ratio (reference seconds / our seconds; >1 is faster).")
    print("ours fsyncs its output (payload file / blob); the reference does not.")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        _child(sys.argv[2:])
    else:
        main()
