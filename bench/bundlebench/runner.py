"""Running the benchmark's commands: logged, timed, peak RSS, and kept per label.

Every command runs with its output in a numbered log under ``WORK/logs``. A set-up
command that fails ends the benchmark (exit 2, :func:`fail`). A measured command that
fails raises :class:`Unmeasured`: the measurements that need it are reported as NOT
MEASURED with the reason (say, a CLI without ``--volume-size`` yet), and the others go on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from measure import run_measured

from bundlebench.model import MiB, read_through

AIRLOCK = str(Path(sys.executable).parent / "airlock")
ENV: Mapping[str, str] = {
    **os.environ,
    "AIRLOCK_CEREMONY_PASSPHRASE": "bench officers' passphrase",
    "AIRLOCK_HUB_PASSPHRASE": "bench hub passphrase",
    "AIRLOCK_SPOKE_PASSPHRASE": "bench site passphrase",
    "AIRLOCK_PRINCIPAL": "bench",
    "COLUMNS": "120",
}


@dataclass(frozen=True)
class Command:
    """A measured command.

    Attributes:
        label: Key in the results, e.g. ``"export ours @1024"``.
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
    """Every measurement of one command: seconds and peak RSS (bytes) per round."""

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


class Unmeasured(Exception):
    """A measured command failed: what needs it is NOT MEASURED, for ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Bench:
    """Runs commands with their output logged and keeps the measurements.

    Attributes:
        work: The work directory (commands run there).
        runs: Measurements per label.
        unmeasured: Why a group of measurements could not be taken, per group.
        facts: What the runs found out (bundle formats, volume counts, the resume tallies).
    """

    def __init__(self, work: Path) -> None:
        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True)
        self.runs: dict[str, Runs] = {}
        self.unmeasured: dict[str, str] = {}
        self.facts: dict[str, Any] = {}
        self._count = 0

    def log_path(self, label: str) -> Path:
        """A new numbered log file for ``label``."""
        self._count += 1
        return self.logs / f"{self._count:03d}-{label.replace(' ', '-').replace('@', '')}.log"

    def run(self, label: str, argv: list[str]) -> None:
        """Runs an unmeasured set-up command; exits with its log on failure."""
        log = self.log_path(label)
        with open(log, "wb") as out:
            proc = subprocess.run(argv, env=ENV, cwd=self.work, stdout=out, stderr=out)
        if proc.returncode:
            fail(f"{label} failed (exit {proc.returncode})", log)

    def attempt(self, label: str, argv: list[str]) -> None:
        """Runs an unmeasured command a measurement needs; raises :class:`Unmeasured`."""
        log = self.log_path(label)
        with open(log, "wb") as out:
            proc = subprocess.run(argv, env=ENV, cwd=self.work, stdout=out, stderr=out)
        if proc.returncode:
            raise Unmeasured(failure(label, proc.returncode, log))

    def measure(self, command: Command) -> None:
        """Prepares, warms the page cache, syncs, then runs and records ``command``.

        Raises:
            Unmeasured: the command failed.
        """
        if command.prepare is not None:
            command.prepare()
        for path in command.warm:
            read_through(path)
        os.sync()
        log = self.log_path(command.label)
        with open(log, "wb") as out:
            try:
                seconds, rss = run_measured(command.argv, env=ENV, cwd=self.work, output=out)
            except subprocess.CalledProcessError as exc:
                raise Unmeasured(failure(command.label, exc.returncode, log)) from None
        runs = self.runs.setdefault(command.label, Runs())
        runs.seconds.append(seconds)
        runs.rss.append(rss)

    def measure_all(self, commands: list[Command], reverse: bool) -> None:
        """Measures ``commands`` in order, or in reverse order (to alternate who goes first)."""
        for command in reversed(commands) if reverse else commands:
            self.measure(command)

    def group(self, name: str) -> bool:
        """Whether group ``name`` is still measurable (no earlier failure)."""
        return name not in self.unmeasured

    def give_up(self, name: str, reason: str) -> None:
        """Records why group ``name`` could not be measured (the first reason is kept)."""
        if name not in self.unmeasured:
            self.unmeasured[name] = reason
            print(f"  not measured ({name}): {reason}", flush=True)


def failure(label: str, code: int, log: Path) -> str:
    """``label failed (exit N): <last line of its log> (log)``."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    last = lines[-1].strip()[:200] if lines else "no output"
    return f"{label} failed (exit {code}): {last} ({log.name})"


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
