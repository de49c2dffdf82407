"""Progress of long operations: what the bundle layers report, and who shows it.

An export or an import that moves gigabytes reports its progress to a
:class:`Progress` it is given: each phase (``"export"``, ``"import"``,
``"rebuild"`` …) begins with the number of bytes it will move, says which
volume it is on, advances by the bytes it has moved, and ends. The layers that
do the work never decide how progress looks: the CLI renders it
(:func:`airlock.bundles.cli.progress_for`: a bar on a terminal, JSON lines with
``--json``, nothing otherwise), and library callers and tests pass
:data:`NO_PROGRESS`.

Calls may come from a worker thread; a renderer takes care of its own locking.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Receives the progress of a long operation, phase by phase."""

    def begin(self, phase: str, total_bytes: int) -> None:
        """A phase starts; it will move ``total_bytes`` bytes (0 when none)."""

    def volume(self, name: str, number: int, of: int) -> None:
        """The phase is now on volume ``number`` of ``of`` (its file name ``name``)."""

    def advance(self, nbytes: int) -> None:
        """``nbytes`` more bytes of the phase are done."""

    def end(self) -> None:
        """The phase is over (whether or not every byte was moved)."""


class _NoProgress:
    """A :class:`Progress` that shows nothing."""

    def begin(self, phase: str, total_bytes: int) -> None:
        """Does nothing."""

    def volume(self, name: str, number: int, of: int) -> None:
        """Does nothing."""

    def advance(self, nbytes: int) -> None:
        """Does nothing."""

    def end(self) -> None:
        """Does nothing."""


NO_PROGRESS: Progress = _NoProgress()
"""Progress that goes nowhere: the default of every function that takes one."""
