"""An audit event that cannot be written names the real cause (exit 6), not only its type.

The database lives on a real tmpfs that is remounted read-only between two
events, as when a site's disk goes read-only after an I/O error.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.smalldisk import remount, small_tmpfs

from airlock.bundles.audit import AuditCheckpoint, AuditLog, AuditRecord
from airlock.bundles.db import create_tables, make_engine
from airlock.bundles.errors import AuditWriteError


def test_a_read_only_database_is_named_as_the_cause(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", 8 << 20) as disk:
        engine = make_engine(f"sqlite:///{disk / 'spoke.db'}")
        create_tables(engine, [AuditRecord, AuditCheckpoint])
        log = AuditLog(engine, "spoke")
        log.record("spoke.init", "success")
        engine.dispose()  # a busy filesystem cannot be remounted read-only
        remount(disk, read_only=True)
        try:
            with pytest.raises(AuditWriteError) as caught:
                log.record("spoke.import", "failure")
        finally:
            remount(disk, read_only=False)
            engine.dispose()
    error = caught.value
    assert error.exit_code == 6
    assert error.message.startswith("the audit event 'spoke.import' could not be written: ")
    assert "readonly database" in error.message or "unable to open" in error.message
    assert error.hint == (
        f"the home {disk} is read-only: remount it read-write, then retry; the action was not done"
    )
