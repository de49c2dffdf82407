"""The audit log of a ceremony participant's directory, and audited steps.

Each officer's key directory and the coordinator's workspace hold their own
hash-chained audit log (``airlock.toml`` role ``ceremony``, SQLite next to
it), so ``airlock audit verify --home DIR`` checks it like any other. Every
step appends one entry: ``success`` with what it made, or ``refused`` /
``failure`` with the error's message and hint (never a secret) — and a
refused step changes nothing else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airlock.bundles.audit import AuditLog, AuditRecord, failure_details, failure_outcome
from airlock.bundles.clock import Clock
from airlock.bundles.config import CONFIG_FILE, write_config
from airlock.bundles.db import create_tables, make_engine

AUDIT_COMPONENT = "ceremony"
CONFIG_ROLE = "ceremony"


class StepLog:
    """The audit log of one ceremony directory (created on first use)."""

    def __init__(self, directory: Path, database: str, clock: Clock) -> None:
        self.directory = Path(directory)
        self.clock = clock
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not (self.directory / CONFIG_FILE).exists():
            write_config(
                self.directory, CONFIG_ROLE, {"database": {"url": f"sqlite:///{database}"}}
            )
        self.engine = make_engine(f"sqlite:///{self.directory / database}")
        create_tables(self.engine, [AuditRecord])
        self.log = AuditLog(self.engine, component=AUDIT_COMPONENT)

    def close(self) -> None:
        """Closes the database."""
        self.engine.dispose()

    def __enter__(self) -> StepLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def step(self, action: str, obj: str, details: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Runs one step; appends its success entry, or its failure entry and re-raises.

        The body may add to the yielded dict; it becomes the entry's details.
        """
        extra: dict[str, Any] = dict(details)
        try:
            yield extra
        except Exception as exc:
            self.log.record(
                action,
                failure_outcome(exc),
                object=obj,
                details={**details, **failure_details(exc)},
                when=self.clock.now(),
            )
            raise
        self.log.record(action, "success", object=obj, details=extra, when=self.clock.now())
