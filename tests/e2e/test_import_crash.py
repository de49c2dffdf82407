"""A crashed format-1 import (kill -9) leaves no readable plaintext behind for long.

A real ``airlock spoke import`` process decrypts a bundle with a 64 MiB model;
it is killed with SIGKILL once decrypted model bytes are in its scratch
directory, at several delays. The scratch must be private (0700, files 0600),
and the next command that takes the import lock removes it, audits the count,
and imports normally. Only the medium (files) and the moment of the crash are
the test's; everything else is the real command. The scratch under ``HOME/tmp``
is format 1's; a format-2 import keeps a resumable state instead, and its
kill -9 is test_import_volumes_crash.py's.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Collection
from pathlib import Path

import pytest
from helpers.bundlecraft import FORMAT_1
from helpers.onnx_models import make_onnx_model
from helpers.spokeenv import (
    AIRLOCK,
    LOCK_FILE,
    SITE_ID,
    SITE_PASSPHRASE,
    run_airlock,
)

from airlock.bundles.audit import AuditLog, verify_engine
from airlock.hub.context import HubContext
from airlock.hub.export import assign, export
from airlock.hub.intake import add_model
from airlock.spoke.importing import CLEANUP_ACTION
from airlock.spoke.site import PASSPHRASE_ENV, SpokeHome

pytestmark = pytest.mark.slow

KILL_DELAYS = (0.0, 0.01, 0.05, 0.1)
"""Seconds between the first decrypted byte on disk and SIGKILL."""


def start_import(home: Path, bundle: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    env.update({"AIRLOCK_PRINCIPAL": "site-admin", PASSPHRASE_ENV: SITE_PASSPHRASE})
    return subprocess.Popen(
        [str(AIRLOCK), "spoke", "import", "--home", str(home), str(bundle)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def plaintext_in_scratch(tmp: Path, skip: Collection[str] = ()) -> list[Path]:
    """Decrypted blob files in scratch directories (complete or being written)."""
    return [
        p for p in tmp.glob("import-*/blobs/sha256/*") if p.is_file() and p.parts[-4] not in skip
    ]


def kill_once_plaintext_is_written(
    proc: subprocess.Popen[bytes], tmp: Path, delay: float, earlier: set[str]
) -> None:
    """SIGKILLs ``proc`` ``delay`` s after its own scratch (not ``earlier`` ones) has plaintext."""
    deadline = time.monotonic() + 120
    while not plaintext_in_scratch(tmp, earlier):
        assert proc.poll() is None, "the import ended before it wrote any plaintext"
        assert time.monotonic() < deadline, "no plaintext scratch appeared"
        time.sleep(0.001)
    time.sleep(delay)
    assert proc.poll() is None, f"the import finished within {delay} s: nothing to crash"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


def test_scratch_left_by_kill_9_is_private_and_removed_by_the_next_import(
    hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    model = make_onnx_model(tmp_path / "big" / "model.onnx", external_data=True, width=16 << 20)
    add_model(hub, "big", "1", model.parent)
    assign(hub, SITE_ID, "big", "1")
    export(hub, SITE_ID, media / "bundle", media=FORMAT_1)
    tmp = spoke.tmp_dir

    earlier: set[str] = set()
    for delay in KILL_DELAYS:
        proc = start_import(spoke.path, media / "bundle")
        kill_once_plaintext_is_written(proc, tmp, delay, earlier)
        [scratch] = [p for p in tmp.iterdir() if p.name.startswith("import-")]
        assert scratch.name not in earlier, "the crashed import's predecessor was not removed"
        earlier.add(scratch.name)
        assert stat.S_IMODE(tmp.stat().st_mode) == 0o700
        assert stat.S_IMODE(scratch.stat().st_mode) == 0o700
        leaked = plaintext_in_scratch(tmp)
        assert leaked, "the kill came after the scratch was removed"
        assert all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in leaked)

    proc_done = run_airlock("spoke", "import", "--home", str(spoke.path), str(media / "bundle"))
    assert proc_done.returncode == 0, proc_done.stderr
    assert sorted(p.name for p in tmp.iterdir()) == [LOCK_FILE]

    entries = AuditLog(spoke.engine, "spoke").entries()
    cleanups = [e for e in entries if e.action == CLEANUP_ACTION]
    assert len(cleanups) == len(KILL_DELAYS)  # every start after a crash removed one
    assert all(json.loads(e.details) == {"removed_scratch_dirs": 1} for e in cleanups)
    assert (entries[-1].action, entries[-1].outcome) == ("spoke.import", "success")
    assert verify_engine(spoke.engine).ok
