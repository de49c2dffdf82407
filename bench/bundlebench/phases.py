"""Where a command's time and memory go: its phases, from its ``--json`` progress lines.

With ``--json`` an export or an import writes one JSON line on stderr when a phase
(reading or writing the volumes) begins and one when it ends. The command is run once
more (not one of the timed rounds) with its stderr followed line by line; at each
phase's begin and end the process's ``VmHWM`` (its peak RSS so far, from
``/proc/PID/status``) is read, and sampled every few milliseconds until it exits.
That splits the command into: before the first phase (start-up, key unlock, envelope,
per-site part), each phase, and after the last (for an import: in-toto, the validation
gate — which loads the model into onnxruntime —, promotion, the commit): the seconds
and the peak RSS reached by the end of each. Information, not a target: the targets
judge the whole command.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bundlebench.model import MiB, read_through
from bundlebench.runner import ENV, Bench

SAMPLE_SECONDS = 0.005


def peak_rss(pid: int) -> int | None:
    """``VmHWM`` of ``pid`` in bytes (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def profile(bench: Bench, argv: list[str], label: str, warm: Path) -> dict[str, Any] | None:
    """Runs ``argv`` (which must print JSON progress on stderr) and splits it by phase.

    Returns:
        ``{"seconds", "peak_rss_mib", "marks": [{"at", "phase", "state", "peak_rss_mib"}]}``,
        or None when the command failed (its log says why).
    """
    read_through(warm)
    log = bench.log_path(label)
    marks: list[dict[str, Any]] = []
    start = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=ENV, cwd=bench.work, stdout=out, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        stderr = proc.stderr

        def follow() -> None:
            for raw in stderr:
                at = time.perf_counter() - start
                rss = peak_rss(proc.pid)
                out.write(raw)
                try:
                    progress = json.loads(raw)["progress"]
                except (ValueError, KeyError, TypeError):
                    continue
                if progress.get("state") in ("begin", "end"):
                    marks.append(
                        {
                            "at": round(at, 3),
                            "phase": str(progress.get("phase")),
                            "state": progress["state"],
                            "peak_rss_mib": None if rss is None else round(rss / MiB, 1),
                        }
                    )

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        last = 0
        while proc.poll() is None:
            last = peak_rss(proc.pid) or last
            time.sleep(SAMPLE_SECONDS)
        reader.join(timeout=10)
    if proc.returncode:
        return None
    marked = [m["peak_rss_mib"] for m in marks if m["peak_rss_mib"] is not None]
    return {
        "seconds": round(time.perf_counter() - start, 3),
        "peak_rss_mib": max([round(last / MiB, 1), *marked]),
        "marks": marks,
    }


def spans(result: dict[str, Any]) -> list[tuple[float, float, str, float | None]]:
    """``(from, to, what, peak RSS MiB by then)`` rows: before, each phase, after."""
    rows: list[tuple[float, float, str, float | None]] = []
    before, current = 0.0, None
    for mark in result["marks"]:
        if mark["state"] == "begin":
            what = "between phases" if rows else "before the first phase"
            rows.append((before, mark["at"], what, mark["peak_rss_mib"]))
            current = mark["phase"]
        else:
            rows.append((before, mark["at"], f"phase {current!r}", mark["peak_rss_mib"]))
        before = mark["at"]
    rows.append((before, result["seconds"], "after the last phase", result["peak_rss_mib"]))
    return rows
