"""Step 1 of delivery: the outbox file ``HOME/events/outbox.jsonl``, rotated, fsynced.

Every event not yet written is appended (one CloudEvent JSON object per line),
the file is fsynced, and only then are the rows marked ``written_at``: a crash
between the two writes the lines again next time (at least once, never lost).
One delivery per home at a time holds ``events/.lock`` (:func:`delivery_lock`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlmodel import col, select

from airlock.bundles.clock import utc_iso
from airlock.bundles.db._engine import session_scope
from airlock.bundles.errors import (
    AirlockError,
)
from airlock.bundles.events._outbox import OutboxEvent
from airlock.bundles.events._settings import (
    BATCH_SIZE,
    LOCK_FILE,
    OUTBOX_FILE,
    DeliverySettings,
)

if TYPE_CHECKING:
    pass


def event_line(body: dict[str, Any]) -> bytes:
    """The bytes of one event as written to the file and POSTed (compact JSON, sorted keys)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@contextlib.contextmanager
def delivery_lock(events_dir: Path, wait: bool) -> Iterator[bool]:
    """Holds ``events/.lock`` (one delivery per home at a time); yields whether it got it."""
    events_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(events_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    acquired = True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        acquired = False
    try:
        yield acquired
    finally:
        if acquired:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def write_outbox(
    engine: Engine, events_dir: Path, settings: DeliverySettings, now: dt.datetime
) -> int:
    """Step 1: append unwritten events to the outbox file, fsync, then mark them."""
    outbox = OutboxFile(events_dir / OUTBOX_FILE, settings.max_file_bytes, settings.keep_files)
    total = 0
    while True:
        with session_scope(engine) as session:
            rows = session.exec(
                select(OutboxEvent)
                .where(col(OutboxEvent.written_at) == "")
                .order_by(col(OutboxEvent.seq))
                .limit(BATCH_SIZE)
            ).all()
            if not rows:
                return total
            try:
                outbox.append([event_line(row.body) for row in rows])
            except OSError as exc:
                raise AirlockError(
                    f"could not write the event outbox file {outbox.path}: {exc.strerror or exc}",
                    hint="check free space and permissions of the home; the events stay "
                    "pending and are written by the next delivery",
                ) from exc
            stamp = utc_iso(now)
            for row in rows:
                row.written_at = stamp
                session.add(row)
        total += len(rows)
        if len(rows) < BATCH_SIZE:
            return total


class OutboxFile:
    """The JSON-lines outbox file, appended with fsync and rotated by size."""

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep

    def append(self, lines: list[bytes]) -> None:
        """Appends ``lines`` (each gets a newline), rotating first whenever one would not fit.

        Raises:
            OSError: the file could not be written or synced.
        """
        size = self.path.stat().st_size if self.path.exists() else 0
        fd = self._open()
        try:
            for line in lines:
                data = line + b"\n"
                if size > 0 and size + len(data) > self.max_bytes:
                    os.fsync(fd)
                    os.close(fd)
                    fd = -1
                    self._rotate()
                    fd = self._open()
                    size = 0
                os.write(fd, data)
                size += len(data)
            os.fsync(fd)
        finally:
            if fd >= 0:
                os.close(fd)
        fsync_events_dir(self.path.parent)

    def rotated(self, index: int) -> Path:
        """The ``index``-th older file (1 is the newest)."""
        return self.path.with_name(f"{self.path.name}.{index}")

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def _rotate(self) -> None:
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
        else:
            self.rotated(self.keep).unlink(missing_ok=True)
            for index in range(self.keep - 1, 0, -1):
                if self.rotated(index).exists():
                    self.rotated(index).replace(self.rotated(index + 1))
            self.path.replace(self.rotated(1))
        fsync_events_dir(self.path.parent)


def fsync_events_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
