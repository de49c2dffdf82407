"""Measuring helpers for the benchmarks: wall time and peak RSS of a child process.

Each measured command runs in its own process, so its peak resident set size is
its own (``os.wait4`` reports ``ru_maxrss``; for a shell pipeline that is the
largest of its processes, not their sum).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence

MiB = 1 << 20


def run_measured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> tuple[float, int]:
    """Runs ``argv`` and returns ``(seconds, peak_rss_bytes)``.

    Raises:
        subprocess.CalledProcessError: the command failed.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(list(argv), env=dict(env) if env is not None else None, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, list(argv))
    return seconds, usage.ru_maxrss * 1024  # Linux reports KiB


def shell(script: str) -> list[str]:
    """argv running ``script`` in bash with ``pipefail`` (a failing stage fails the run)."""
    return ["bash", "-o", "pipefail", "-c", script]


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def mib_per_s(size_bytes: int, seconds: float) -> float:
    """Throughput in MiB/s."""
    return size_bytes / MiB / seconds if seconds > 0 else float("inf")
