"""How the CLI shows the progress of a long export or import (:mod:`airlock.bundles.progress`).

:func:`progress_for` picks the renderer for a command:

- with ``--json``: :class:`JsonProgress`, one JSON object per line on standard
  error, ``{"progress": {"phase", "state", "volume", "done", "total", "rate"}}``:
  one when a phase begins, one when it ends, and in between at most one every
  :data:`JSON_INTERVAL` seconds (standard output keeps exactly the command's
  one result document);
- on a terminal: :class:`BarProgress`, a rich progress bar on standard error
  with the bytes done and to do, the rate, the time left and the current
  volume (``volume 3 of 7``);
- otherwise (a pipe, a log file, cron): nothing.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from airlock.bundles.progress import NO_PROGRESS, Progress

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

JSON_INTERVAL = 0.25
"""Seconds between two JSON progress lines of one phase (about 4 a second)."""


def progress_for(json_output: bool, stream: IO[str] | Console | None = None) -> Progress:
    """The progress renderer of a command.

    Args:
        json_output: The command prints JSON (``--json``): progress goes as
            JSON lines.
        stream: Where progress goes: a text stream (default: standard error)
            or a rich console (tests pass ``Console(force_terminal=True)``).
            A bar is drawn only when it is a terminal.
    """
    from rich.console import Console

    if isinstance(stream, Console):
        console = stream
    else:
        console = Console(file=stream if stream is not None else sys.stderr)
    if json_output:
        return JsonProgress(console.file)
    if not console.is_terminal:
        return NO_PROGRESS
    return BarProgress(console)


class JsonProgress:
    """Progress as JSON lines: at each phase's begin and end, at most every 0.25 s between.

    Each line is ``{"progress": {...}}`` with ``phase``, ``state`` (``begin``,
    ``running`` or ``end``), ``volume`` (``{"name", "number", "of"}`` or null
    before the first), ``done`` and ``total`` (bytes) and ``rate`` (bytes a
    second since the phase began).
    """

    def __init__(self, stream: IO[str], clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()
        self._phase: str | None = None
        self._volume: dict[str, Any] | None = None
        self._done = 0
        self._total = 0
        self._started = 0.0
        self._last = 0.0

    def begin(self, phase: str, total_bytes: int) -> None:
        """Starts a phase (ending one still open) and writes its first line."""
        self.end()
        with self._lock:
            self._phase, self._volume = phase, None
            self._done, self._total = 0, max(total_bytes, 0)
            self._started = self._clock()
            self._emit("begin", self._started)

    def volume(self, name: str, number: int, of: int) -> None:
        """Notes the current volume (shown on the next line)."""
        with self._lock:
            self._volume = {"name": name, "number": number, "of": of}
            self._maybe_emit()

    def advance(self, nbytes: int) -> None:
        """Counts ``nbytes`` more; writes a line if the last one is old enough."""
        with self._lock:
            self._done += nbytes
            self._maybe_emit()

    def end(self) -> None:
        """Writes the phase's last line (nothing when no phase is open)."""
        with self._lock:
            if self._phase is not None:
                self._emit("end", self._clock())
                self._phase = None

    def _maybe_emit(self) -> None:
        now = self._clock()
        if self._phase is not None and now - self._last >= JSON_INTERVAL:
            self._emit("running", now)

    def _emit(self, state: str, now: float) -> None:
        elapsed = now - self._started
        document = {
            "progress": {
                "phase": self._phase,
                "state": state,
                "volume": self._volume,
                "done": self._done,
                "total": self._total,
                "rate": round(self._done / elapsed) if elapsed > 0 else 0,
            }
        }
        self._stream.write(json.dumps(document, sort_keys=True) + "\n")
        self._stream.flush()
        self._last = now


class BarProgress:
    """Progress as a rich bar: phase, bar, bytes done/total, rate, time left, volume."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._lock = threading.Lock()
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None

    def begin(self, phase: str, total_bytes: int) -> None:
        """Draws a new bar for the phase (ending one still open)."""
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as RichProgress

        self.end()
        with self._lock:
            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[volume]}"),
                console=self._console,
                redirect_stdout=False,  # standard output stays the command's own
                redirect_stderr=False,
            )
            self._task = self._bar.add_task(phase, total=max(total_bytes, 0), volume="")
            self._bar.start()

    def volume(self, name: str, number: int, of: int) -> None:
        """Shows ``volume NUMBER of OF`` next to the bar."""
        with self._lock:
            if self._bar is not None and self._task is not None:
                self._bar.update(self._task, volume=f"volume {number} of {of}")

    def advance(self, nbytes: int) -> None:
        """Moves the bar by ``nbytes``."""
        with self._lock:
            if self._bar is not None and self._task is not None:
                self._bar.advance(self._task, nbytes)

    def end(self) -> None:
        """Draws the bar one last time and leaves it on the screen."""
        with self._lock:
            if self._bar is not None:
                self._bar.stop()
            self._bar, self._task = None, None
