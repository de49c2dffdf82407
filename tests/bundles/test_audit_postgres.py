"""Concurrent appends on PostgreSQL: one consistent log, nothing lost or duplicated.

Runs against the machine's PostgreSQL server (trust auth, database ``test``),
in a schema of its own that is dropped afterwards. Two processes append
entries inside longer transactions (as hub and spoke commands do, with the
state change they record) while a third signs checkpoints; the advisory lock
taken by ``AuditLog`` makes them queue instead of colliding on the next
``seq`` or forking the chain.
"""

from __future__ import annotations

import itertools
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner
from sqlalchemy import Engine, text

from airlock.bundles.audit import AuditCheckpoint, AuditLog, AuditRecord, verify_log
from airlock.bundles.db import create_tables, make_engine

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
APPENDS = 60
CHECKPOINTS = 6

WORKER = r"""
import datetime as dt, sys, time
from pathlib import Path
from securesystemslib.signer import CryptoSigner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from airlock.bundles.audit._log import AuditLog
from airlock.bundles.audit._checkpoint_store import write_checkpoint
from airlock.bundles.db._engine import make_engine, session_scope

url, name, count, barrier, seed = sys.argv[1:6]
count, barrier = int(count), Path(barrier)
engine = make_engine(url)
log = AuditLog(engine, "hub")
with engine.connect() as conn:
    conn.execute(text("SELECT 1"))
(barrier / f"ready-{name}").touch()
while not (barrier / "go").exists():
    time.sleep(0.005)
if name == "checkpointer":
    signer = CryptoSigner(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed)))
    for i in range(count):
        write_checkpoint(log, signer, "airlock/hub/pg-test", dt.datetime.now(dt.UTC))
        time.sleep(0.01)
else:
    for i in range(count):
        with session_scope(engine) as session:
            session.execute(text("SELECT 1"))  # the state change the entry records
            log.record("test.append", "success", object=f"{name}-{i}", principal=name,
                       details={"i": i}, session=session)
engine.dispose()
"""


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema on the local server; the URL's search_path points at it."""
    schema = f"airlock_test_{secrets.token_hex(6)}"
    admin = make_engine(SERVER)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{SERVER}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    made = make_engine(pg_url)
    create_tables(made, [AuditRecord, AuditCheckpoint])
    yield made
    made.dispose()


def test_the_schema_is_private_to_the_test(engine: Engine, pg_url: str) -> None:
    with engine.connect() as conn:
        path = conn.execute(text("SHOW search_path")).scalar_one()
    assert path == pg_url.rsplit("%3D", 1)[1]
    AuditLog(engine, "hub").record("test.one", "success", principal="alice")
    assert verify_log(engine, None).entries == 1


def test_concurrent_appenders_and_checkpoints_make_one_consistent_log(
    engine: Engine, pg_url: str, tmp_path: Path
) -> None:
    seed = secrets.token_bytes(32)
    key = CryptoSigner(Ed25519PrivateKey.from_private_bytes(seed)).public_key
    jobs = [("alice", APPENDS), ("bob", APPENDS), ("checkpointer", CHECKPOINTS)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, pg_url, name, str(n), str(tmp_path), seed.hex()],
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, n in jobs
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < len(jobs) and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err

    entries = AuditLog(engine, "hub").entries()
    assert [e.seq for e in entries] == list(range(1, 2 * APPENDS + CHECKPOINTS + 1))
    for name in ("alice", "bob"):
        mine = [e.object for e in entries if e.principal == name]
        assert mine == [f"{name}-{i}" for i in range(APPENDS)], "none lost, none duplicated"
    assert len({e.event_id for e in entries}) == len(entries)
    order = [e.principal for e in entries if e.principal in ("alice", "bob")]
    switches = sum(1 for a, b in itertools.pairwise(order) if a != b)
    assert switches >= 2, "the two writers really ran at the same time"

    report = verify_log(engine, {"airlock/hub/pg-test": key})
    assert report.ok, report.problem
    assert report.checkpoints_checked == CHECKPOINTS and report.entries == len(entries)
