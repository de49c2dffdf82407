"""The progress contract between the volume layer and the CLI (until ``airlock.bundles.progress``).

Structurally the same protocol as the contract's ``airlock.bundles.progress.Progress``:
any object with these four methods will do.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Receives progress: phases, the current volume and bytes done."""

    def begin(self, phase: str, total_bytes: int) -> None:
        """A phase starts; ``total_bytes`` is what it will move."""

    def volume(self, name: str, number: int, of: int) -> None:
        """Work moves to volume ``name`` (``number`` of ``of``)."""

    def advance(self, nbytes: int) -> None:
        """``nbytes`` more bytes were moved."""

    def end(self) -> None:
        """The phase is over."""


class _NoProgress:
    def begin(self, phase: str, total_bytes: int) -> None:
        pass

    def volume(self, name: str, number: int, of: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def end(self) -> None:
        pass


NO_PROGRESS: Progress = _NoProgress()
"""Does nothing."""
