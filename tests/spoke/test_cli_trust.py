"""``airlock spoke trust reset-floor``: the site-side recovery from a floor a fast clock raised.

An earlier release advanced the time floor to the local clock; a site whose
clock once ran 25 days ahead then refused every import for 25 days. The
command lowers the floor to the newest signed time the site verified, with
the site passphrase, audited; it refuses when there is nothing to lower.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from helpers.hubenv import HUB_TIME
from helpers.spokeenv import (
    SITE_ID,
    SPOKE_TIME,
    Invoke,
    accept_import,
    assert_error_output,
    refuse_import,
)
from sqlmodel import Session

from airlock.bundles.audit import AuditLog
from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import FreshnessError
from airlock.hub.context import HubContext
from airlock.hub.export import export
from airlock.spoke.site import STATE_ID, SpokeHome, SpokeState
from airlock.spoke.status import read_status

ACTION = "spoke.trust.reset-floor"
AHEAD = SPOKE_TIME + dt.timedelta(days=25)


def _floor_set_by_an_earlier_release(spoke: SpokeHome, when: dt.datetime) -> None:
    """The floor as the old rule max(floor, local clock, created) left it after a fast clock."""
    with Session(spoke.engine) as session:
        state = session.get(SpokeState, STATE_ID)
        assert state is not None
        state.time_floor = when.isoformat()
        session.add(state)
        session.commit()


def test_reset_floor_lowers_the_floor_to_the_last_signed_time_and_is_audited(
    airlock: Invoke, hub: HubContext, hub_clock: FixedClock, spoke: SpokeHome, media: Path
) -> None:
    envelope = export(hub, SITE_ID, media / "bundle-1")
    accept_import(spoke, media / "bundle-1")
    _floor_set_by_an_earlier_release(spoke, AHEAD)
    hub_clock.advance(dt.timedelta(minutes=10))
    export(hub, SITE_ID, media / "bundle-2")
    refuse_import(spoke, media / "bundle-2", FreshnessError, "earlier than the newest verified")

    result = airlock(
        "spoke", "trust", "reset-floor", "--home", str(spoke.path),
        "--reason", "the clock ran 25 days ahead", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "old_floor": AHEAD.isoformat(),
        "new_floor": HUB_TIME.isoformat(),
        "reason": "the clock ran 25 days ahead",
        "bundle_id": envelope.bundle_id,
    }
    assert read_status(spoke).time_floor == HUB_TIME.isoformat()
    entry = AuditLog(spoke.engine, "spoke").entries()[-1]
    assert (entry.action, entry.outcome, entry.principal) == (ACTION, "success", "site-admin")
    assert json.loads(entry.details)["old_floor"] == AHEAD.isoformat()
    assert json.loads(entry.details)["new_floor"] == HUB_TIME.isoformat()

    assert accept_import(spoke, media / "bundle-2").sequence == 2


def test_reset_floor_refuses_when_there_is_nothing_to_lower(
    airlock: Invoke, hub: HubContext, spoke: SpokeHome, media: Path
) -> None:
    before_import = airlock(
        "spoke", "trust", "reset-floor", "--home", str(spoke.path), "--reason", "r"
    )
    assert before_import.exit_code == 3
    assert_error_output(before_import.stderr, "verified no signed bundle time")

    export(hub, SITE_ID, media / "bundle-1")
    accept_import(spoke, media / "bundle-1")
    floor = read_status(spoke).time_floor
    entries = AuditLog(spoke.engine, "spoke").count()
    result = airlock(
        "spoke", "trust", "reset-floor", "--home", str(spoke.path), "--reason", "r", "--json"
    )
    assert result.exit_code == 3
    assert "nothing to lower" in result.stderr and "what to do:" in result.stderr
    assert read_status(spoke).time_floor == floor
    log = AuditLog(spoke.engine, "spoke").entries()
    assert len(log) == entries + 1
    assert (log[-1].action, log[-1].outcome) == (ACTION, "failure")


def test_reset_floor_needs_the_site_passphrase(
    airlock: Invoke, hub: HubContext, spoke: SpokeHome, media: Path
) -> None:
    export(hub, SITE_ID, media / "bundle-1")
    accept_import(spoke, media / "bundle-1")
    _floor_set_by_an_earlier_release(spoke, AHEAD)
    args = ("spoke", "trust", "reset-floor", "--home", str(spoke.path), "--reason", "r")
    assert airlock(*args, passphrase="not the passphrase").exit_code == 4
    assert read_status(spoke).time_floor == AHEAD.isoformat()
