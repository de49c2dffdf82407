"""``ceremony status``: when each offline role expires and when to hold the next ceremony.

Reads the newest roots and Image targets of a ceremony directory (and the
in-toto layout keys the Image root anchors) and gives, per role, its expiry
and the date by which a re-signing ceremony must happen (``expiry - lead
time``). The CLI exits :data:`EXIT_DUE` when any role is inside the lead time
and :data:`EXIT_EXPIRED` when one has expired, so cron and monitoring can
alert on it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airlock.bundles import tuf as tufrepo
from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import UsageError
from airlock.ceremony.documents._history import load_history

DEFAULT_LEAD_DAYS = 30
EXIT_DUE = 20
EXIT_EXPIRED = 21
OK, DUE, EXPIRED = "ok", "due", "expired"


@dataclass(frozen=True)
class RoleExpiry:
    """One offline role's expiry and re-signing deadline."""

    role: str
    version: int
    expires: dt.datetime
    resign_by: dt.datetime
    days_left: int
    state: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "role": self.role,
            "version": self.version,
            "expires": utc_iso(self.expires),
            "resign_by": utc_iso(self.resign_by),
            "days_left": self.days_left,
            "state": self.state,
        }


def ceremony_calendar(directory: Path, now: dt.datetime, lead_days: int) -> list[RoleExpiry]:
    """Every offline role of the ceremony in ``directory``, soonest expiry first.

    Raises:
        UsageError: a negative lead time.
        NotFoundError, SignatureError, MediaError: see :func:`load_history`.
    """
    if lead_days < 0:
        raise UsageError("the lead time cannot be negative", hint="pass --lead-days 0 or more")
    history = load_history(directory)
    image_root = history.image.current.signed
    targets = history.image_targets.signed
    director_root = history.director.current.signed
    entries: list[tuple[str, int, dt.datetime]] = [
        ("Image root", image_root.version, image_root.expires),
        ("Image targets", targets.version, targets.expires),
        ("Director root", director_root.version, director_root.expires),
    ]
    if tufrepo.LAYOUT_FIELD in image_root.unrecognized_fields:
        _keys, _threshold, layout_expires = tufrepo.layout_keys(image_root)
        entries.append(("in-toto layout keys", image_root.version, layout_expires))
    lead = dt.timedelta(days=lead_days)
    result = []
    for role, version, expires in entries:
        expires = expires.astimezone(dt.UTC)
        state = EXPIRED if now >= expires else DUE if now >= expires - lead else OK
        result.append(
            RoleExpiry(role, version, expires, expires - lead, (expires - now).days, state)
        )
    return sorted(result, key=lambda item: item.expires)


def exit_code(calendar: list[RoleExpiry]) -> int:
    """0 when nothing is due, :data:`EXIT_DUE` inside the lead time, :data:`EXIT_EXPIRED`."""
    states = {item.state for item in calendar}
    return EXIT_EXPIRED if EXPIRED in states else EXIT_DUE if DUE in states else 0
