"""Resume after kill -9: the bytes a second import re-reads, counted outside airlock.

The issue's target: after an interrupted import (kill -9 halfway), the second run
reads at most 5 % of the bytes the first run had already verified. What airlock
itself reports cannot be the judge of that, so the bytes are counted by the kernel's
view of the process: every import here runs under ``strace -f -y`` tracing only the
calls that move file bytes into a process (``read``, ``pread64``, ``readv``,
``preadv``, ``preadv2``, ``sendfile``, ``copy_file_range``, ``splice``) plus ``mmap``.
``-y`` prints the path behind each file descriptor, ``-s 0`` no data, ``-ff`` one
file per thread (so no call is split across lines by another thread's); the bytes a
call returned are summed per path, and the volume files are the ones the envelope
lists. Every thread is counted, whatever buffer size, ``read`` or ``pread``.
``--seccomp-bpf`` stops the process only at those calls; the traced runs are not
timed. A volume mapped with ``mmap`` would be read by page faults that no call
shows: then the figure is NOT MEASURED rather than undercounted. (Counting
``/proc/PID/io`` ``rchar`` instead would mix in module files, the database, the
site part and the import state; page-cache residency would count the kernel's
read-ahead — 8 MiB on this disk — as reads.)

The measurement, on the bundle cut into about four data volumes (no parity):

1. a complete import into a fresh spoke home: ``full`` = bytes it read from the
   volume files (what an uninterrupted import needs);
2. a fresh spoke home again; an import killed with SIGKILL as soon as it has read
   half of ``full`` from the volume files (the tally is followed live):
   ``first`` = what it read by then. Chunks are verified as they are read, so
   ``first`` is what it had verified, plus at most the reads in flight (a few MiB);
3. ``airlock spoke import --status --json`` when the CLI has it (printed);
4. the same import again, to completion: ``second``.

Bytes re-read = ``first + second - full``: what the interruption cost in reading,
beyond one complete import. It counts against airlock the bytes in flight at the
kill and any chunk verified after the last checkpoint. The target:
re-read / ``first`` <= 5 %. When the second import's ``--json`` result reports bytes
read, that figure is printed next to the outside one, and so are the volumes it says
it read, resumed or rebuilt; reads of the import's own state (``staging/imports/``)
are printed too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bundlebench.commands import Workspace, airlock, bundle_info
from bundlebench.model import read_through
from bundlebench.runner import ENV, Bench, Unmeasured, failure

GROUP = "resume"
TRACED = "read,pread64,readv,preadv,preadv2,sendfile,copy_file_range,splice,mmap"
STRACE = ("strace", "-f", "--seccomp-bpf", "-qq", "-y", "-s", "0", "-e", "signal=none")
_CALL = re.compile(r"^(?P<call>[a-z_0-9]+)\((?P<args>.*)\)\s+=\s+(?P<ret>-?\d+)")
_FD = re.compile(r"\d+<([^>]*)>")
_SECOND_FD = {"sendfile"}  # sendfile(out_fd, in_fd, …): the bytes come from the second fd
KILL_FRACTION = 0.5
POLL_SECONDS = 0.005


@dataclass
class Tally:
    """Bytes read per path, and the paths mapped into memory, from strace lines."""

    by_path: dict[str, int] = field(default_factory=dict)
    mapped: set[str] = field(default_factory=set)

    def add(self, line: str) -> None:
        """Counts one strace output line (other lines, failed calls: nothing)."""
        match = _CALL.match(line)
        if match is None:
            return
        call, paths, ret = match["call"], _FD.findall(match["args"]), int(match["ret"])
        if call == "mmap":
            self.mapped.update(paths)
            return
        index = 1 if call in _SECOND_FD else 0
        if ret > 0 and len(paths) > index:
            self.by_path[paths[index]] = self.by_path.get(paths[index], 0) + ret

    def read_from(self, paths: frozenset[str]) -> int:
        """Bytes read from any of ``paths``."""
        return sum(n for p, n in self.by_path.items() if p in paths)

    def read_under(self, directory: str) -> int:
        """Bytes read from files below ``directory``."""
        prefix = directory.rstrip("/") + "/"
        return sum(n for p, n in self.by_path.items() if p.startswith(prefix))


class StraceFiles:
    """Follows the per-thread output files of ``strace -ff -o PREFIX`` as they grow."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self.tally = Tally()
        self._offsets: dict[Path, int] = {}

    def update(self) -> Tally:
        """Reads the complete lines written since the last update; returns the tally."""
        for path in sorted(self.prefix.parent.glob(self.prefix.name + ".*")):
            with open(path, "rb") as src:
                src.seek(self._offsets.get(path, 0))
                data = src.read()
            end = data.rfind(b"\n") + 1
            self._offsets[path] = self._offsets.get(path, 0) + end
            for line in data[:end].decode(errors="replace").splitlines():
                self.tally.add(line)
        return self.tally


@dataclass(frozen=True)
class Traced:
    """A traced import: exit status, whether it was killed, what it read, its stdout, its log."""

    returncode: int
    killed: bool
    tally: Tally
    stdout: str
    seconds: float
    log: Path


def traced_import(
    bench: Bench,
    ws: Workspace,
    argv: list[str],
    label: str,
    volumes: frozenset[str],
    kill_at: int | None = None,
) -> Traced:
    """Runs ``argv`` under strace; with ``kill_at``, SIGKILLs it once it read that many
    bytes from ``volumes``."""
    prefix = ws.work / "strace" / label.replace(" ", "-")
    shutil.rmtree(prefix.parent, ignore_errors=True)
    prefix.parent.mkdir()
    log = bench.log_path(label)
    files = StraceFiles(prefix)
    killed = False
    start = time.perf_counter()
    with open(log, "wb") as err, open(log.with_suffix(".out"), "w+b") as out:
        cmd = [*STRACE, "-e", f"trace={TRACED}", "-ff", "-o", str(prefix), *argv]
        proc = subprocess.Popen(cmd, env=ENV, cwd=ws.work, stdout=out, stderr=err)
        while proc.poll() is None:
            if kill_at is not None and not killed and files.update().read_from(volumes) >= kill_at:
                killed = kill_traced_child(proc.pid)
            time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - start
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    return Traced(proc.returncode, killed, files.update(), stdout, seconds, log)


def kill_traced_child(strace_pid: int) -> bool:
    """SIGKILLs the process strace started (the ``airlock`` command), as ``kill -9`` would."""
    children = Path(f"/proc/{strace_pid}/task/{strace_pid}/children")
    try:
        pids = [int(p) for p in children.read_text().split()]
    except OSError:
        return False
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return bool(pids)


def measure_resume(bench: Bench, ws: Workspace, bundle: Path) -> None:
    """The interrupted-then-resumed import of ``bundle`` (see the module docstring)."""
    if shutil.which("strace") is None:
        bench.give_up(GROUP, "strace is not installed (it counts the bytes read from outside)")
        return
    info = bundle_info(bundle)
    volumes = frozenset(str(p.resolve()) for p in info.volume_files)
    state_dir = str((ws.spoke / "staging" / "imports").resolve())
    json_flag = ["--json"] if ws.caps.import_json else []
    argv = airlock("spoke", "import", "--home", ws.spoke, *json_flag, bundle)
    try:
        ws.restore_spoke()
        read_through(bundle)
        full = _completed(traced_import(bench, ws, argv, "resume complete", volumes), "complete")
        ws.restore_spoke()
        read_through(bundle)
        total = full.tally.read_from(volumes)
        if total == 0:
            raise Unmeasured("strace saw no read of a volume file by a complete import")
        first = traced_import(bench, ws, argv, "resume first", volumes, int(total * KILL_FRACTION))
        if not first.killed:
            raise Unmeasured(
                f"the first import ended (exit {first.returncode}) before it could be killed "
                f"({first.log.name})"
            )
        status = _status(bench, ws)
        read_through(bundle)
        second = _completed(traced_import(bench, ws, argv, "resume second", volumes), "second")
    except Unmeasured as exc:
        bench.give_up(GROUP, exc.reason)
        return
    finally:
        ws.restore_spoke()
    mapped = sorted(p for t in (full, first, second) for p in t.tally.mapped if p in volumes)
    bench.facts[GROUP] = {
        "volume_files": len(volumes),
        "volume_bytes": sum(p.stat().st_size for p in info.volume_files),
        "full": total,
        "first": first.tally.read_from(volumes),
        "second": second.tally.read_from(volumes),
        "second_state_reads": second.tally.read_under(state_dir),
        "reported_by_second": sorted(numbers_named(_json(second.stdout), "read")),
        "volumes_by_second": volume_lists(_json(second.stdout)),
        "status_verified": sorted(numbers_named(status, "verified")),
        "seconds": {"complete": full.seconds, "first": first.seconds, "second": second.seconds},
        "mapped_volumes": mapped,
    }
    if mapped:
        bench.give_up(GROUP, f"a volume was mapped with mmap ({mapped[0]}): strace cannot count it")


def _completed(traced: Traced, which: str) -> Traced:
    if traced.returncode != 0:
        raise Unmeasured(failure(f"the {which} traced import", traced.returncode, traced.log))
    return traced


def _status(bench: Bench, ws: Workspace) -> Any:
    """``airlock spoke import --status --json`` after the kill (None when the CLI lacks it)."""
    if not (ws.caps.import_status and ws.caps.import_json):
        return None
    log = bench.log_path("import status")
    argv = airlock("spoke", "import", "--home", ws.spoke, "--status", "--json")
    proc = subprocess.run(argv, env=ENV, cwd=ws.work, capture_output=True)
    log.write_bytes(proc.stdout + proc.stderr)
    if proc.returncode:
        print(f"  {failure('import --status', proc.returncode, log)}", flush=True)
    return _json(proc.stdout.decode(errors="replace"))


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def volume_lists(doc: Any) -> dict[str, list[str]]:
    """The result's ``volumes`` lists (``read``, ``resumed``, ``rebuilt``…), when it has them."""
    volumes = doc.get("volumes") if isinstance(doc, dict) else None
    if not isinstance(volumes, dict):
        return {}
    return {str(k): [str(n) for n in v] for k, v in volumes.items() if isinstance(v, list)}


def numbers_named(doc: Any, word: str, path: str = "") -> Iterator[tuple[str, int]]:
    """Every integer in a JSON document whose key contains ``word``, with its dotted key."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(value, int) and not isinstance(value, bool) and word in str(key):
                yield here, value
            else:
                yield from numbers_named(value, word, here)
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from numbers_named(value, word, f"{path}[{i}]")
