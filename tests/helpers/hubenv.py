"""A real ceremony and hub for tests (hub tests, and spoke/e2e tests that need bundles).

Times are anchored at the real current time, so that the TUF client (which
reads the system clock) accepts what the hub signs, but every component gets
a :class:`FixedClock` so tests can move time explicitly.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from airlock.bundles.clock import Clock, FixedClock, SystemClock
from airlock.ceremony.minimal import CeremonyResult, run_minimal_ceremony
from airlock.hub.context import HubContext
from airlock.hub.trust import init_hub

OFFICER_PASSPHRASE = "officers' test passphrase"
HUB_PASSPHRASE = "hub test passphrase"
CEREMONY_TIME = SystemClock().now() - dt.timedelta(hours=1)
HUB_TIME = CEREMONY_TIME + dt.timedelta(minutes=10)


def hub_secrets(_name: str) -> str:
    """The secrets handler tests give the hub (the CLI would prompt)."""
    return HUB_PASSPHRASE


def make_ceremony(out_dir: Path, when: dt.datetime = CEREMONY_TIME) -> CeremonyResult:
    """Runs a default minimal ceremony into the new directory ``out_dir``."""
    return run_minimal_ceremony(out_dir, OFFICER_PASSPHRASE, HUB_PASSPHRASE, clock=FixedClock(when))


def make_hub(home: Path, ceremony_dir: Path, clock: Clock | None = None) -> HubContext:
    """Initialises a hub home from a ceremony, with a fixed clock at :data:`HUB_TIME`."""
    return init_hub(home, ceremony_dir, hub_secrets, clock=clock or FixedClock(HUB_TIME))


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path → SHA-256 of every file under ``root`` except the lock and the database.

    Compare before and after an operation to prove it changed no file.
    """
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock" and not p.name.startswith("hub.db")
    }
