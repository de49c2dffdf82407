"""Measuring helpers for the benchmarks: wall time and peak RSS of a child process.

Each measured command runs in its own process, so its peak resident set size is
its own: ``os.wait4`` reports ``ru_maxrss`` of the child and of every descendant
it waited for, grandchildren included (for a shell pipeline, the largest of its
processes, not their sum).

A child's ``ru_maxrss`` starts at the high-water mark of the process that spawned
it (the kernel carries it across ``exec``): a command spawned straight from a
benchmark holding 300 MiB reports at least 300 MiB. So the command is spawned,
timed and waited for by a small launcher process (``python -I -S``, about 8 MiB):
that, not the benchmark's size, is the floor below which nothing is resolved
(:func:`rss_floor` measures it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Any

MiB = 1 << 20

_LAUNCHER = """
import os, sys, time
report_fd = int(sys.argv[1])
os.set_inheritable(report_fd, False)
start = time.perf_counter()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
code = os.waitstatus_to_exitcode(status)
os.write(report_fd, f"{seconds!r} {usage.ru_maxrss} {code}".encode())
"""


def run_measured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    output: IO[Any] | None = None,
) -> tuple[float, int]:
    """Runs ``argv`` and returns ``(seconds, peak_rss_bytes)``.

    ``output``, when given, receives the command's stdout and stderr.

    Raises:
        subprocess.CalledProcessError: the command failed (or could not be started).
    """
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(write_fd), *argv],
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdout=output,
            stderr=None if output is None else subprocess.STDOUT,
            pass_fds=(write_fd,),
        )
    finally:
        os.close(write_fd)
    with open(read_fd, "rb") as report:
        fields = report.read().split()
    proc.wait()
    if proc.returncode != 0 or len(fields) != 3:
        raise subprocess.CalledProcessError(proc.returncode or 1, list(argv))
    seconds, max_rss_kib, code = float(fields[0]), int(fields[1]), int(fields[2])
    if code != 0:
        raise subprocess.CalledProcessError(code, list(argv))
    return seconds, max_rss_kib * 1024  # Linux reports KiB


def rss_floor() -> int:
    """The smallest peak RSS :func:`run_measured` can report (measured with ``true``)."""
    return run_measured(["true"])[1]


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
