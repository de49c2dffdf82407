"""Lowering a time floor that a wrong local clock raised, without any hub key.

The time floor is the newest verified time a site has seen; an import is
refused while the local clock reads earlier. It advances only to the signed
creation time of each imported bundle (the ``created`` the Director
timestamp bound, :mod:`airlock.spoke.importing._trust`). Earlier releases also
advanced it to the local clock, so one import with a clock running weeks
ahead locked the site out for weeks.

:func:`reset_floor` (``airlock spoke trust reset-floor``) sets the floor back
to the newest signed time the site verified: the ``created`` claim of the
trusted Director timestamp, i.e. of the last imported bundle. It needs the
site key's passphrase and a reason, is audited with the old and new floor,
and refuses (changing nothing) when the floor is not above that time. A floor
raised by compromised online keys is a signed time: the recovery for that is
an offline root rotation (docs/security-officer.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from tuf.api.metadata import Metadata

from airlock.bundles.clock import Clock, SystemClock, parse_utc
from airlock.bundles.db import session_scope
from airlock.bundles.errors import AirlockError, UsageError
from airlock.bundles.tuf import BUNDLE_FIELD, DIRECTOR
from airlock.spoke.site._home import SpokeHome
from airlock.spoke.site._tables import STATE_ID, SpokeState, TrustedMetadataFile

RESET_FLOOR_ACTION = "spoke.trust.reset-floor"
TIMESTAMP_FILE = "timestamp.json"
ROTATION_HINT = (
    "if the floor was raised by a bundle signed with compromised online keys, the security "
    "officers rotate the keys and the hub exports the rotation (docs/security-officer.md)"
)


@dataclass(frozen=True)
class FloorReset:
    """What ``reset-floor`` changed."""

    old_floor: str
    new_floor: str
    reason: str
    bundle_id: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "old_floor": self.old_floor,
            "new_floor": self.new_floor,
            "reason": self.reason,
            "bundle_id": self.bundle_id,
        }


def signed_time(director_timestamp: bytes | None) -> dt.datetime | None:
    """The bundle creation time a trusted Director timestamp signed (None: none)."""
    if director_timestamp is None:
        return None
    claims = Metadata.from_bytes(director_timestamp).signed.unrecognized_fields.get(BUNDLE_FIELD)
    if not isinstance(claims, dict) or not isinstance(claims.get("created"), str):
        return None
    return parse_utc(claims["created"])


def reset_floor(home: SpokeHome, reason: str, clock: Clock | None = None) -> FloorReset:
    """Lowers the time floor to the newest signed time this site verified.

    Args:
        home: The spoke home (its secrets handler gives the site passphrase).
        reason: Why (recorded in the audit entry); must not be empty.
        clock: The clock for the audit entry.

    Raises:
        SecretError: the site key's passphrase is missing or wrong.
        UsageError: no reason, no signed time verified yet, or nothing to lower.
    """
    now = (clock or SystemClock()).now()
    try:
        return _reset(home, reason.strip(), now)
    except AirlockError as exc:
        home.audit.record(
            RESET_FLOOR_ACTION,
            "failure",
            object=home.site_id,
            details={"error": type(exc).__name__, "message": exc.message},
            reason=reason.strip(),
            when=now,
        )
        raise


def _reset(home: SpokeHome, reason: str, now: dt.datetime) -> FloorReset:
    if not reason:
        raise UsageError("a reason is required", hint='pass --reason "why the floor is lowered"')
    home.keystore().signer(home.signing_key())  # only the holder of the site key may do this
    with session_scope(home.engine) as session:
        state = session.get(SpokeState, STATE_ID)
        if state is None:
            raise UsageError(f"{home.path} has no spoke state", hint="run `airlock spoke init`")
        row = session.get(TrustedMetadataFile, (DIRECTOR, TIMESTAMP_FILE))
        signed = signed_time(row.data if row else None)
        if signed is None:
            raise UsageError(
                "this site has verified no signed bundle time to lower the time floor to",
                hint="import a bundle from the hub first; " + ROTATION_HINT,
            )
        old = dt.datetime.fromisoformat(state.time_floor)
        if old <= signed:
            raise UsageError(
                f"the time floor {old.isoformat()} is not later than the newest signed time "
                f"{signed.isoformat()} (bundle {state.last_bundle_id}): nothing to lower",
                hint="if imports are refused as earlier than the floor, set the system clock "
                "right; " + ROTATION_HINT,
            )
        result = FloorReset(old.isoformat(), signed.isoformat(), reason, state.last_bundle_id)
        state.time_floor = result.new_floor
        state.updated_at = now.isoformat()
        session.add(state)
        home.audit.record(
            RESET_FLOOR_ACTION,
            "success",
            object=home.site_id,
            details=result.to_dict(),
            reason=reason,
            session=session,
            when=now,
        )
    return result
