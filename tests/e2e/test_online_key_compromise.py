"""What the hub's online keys can and cannot do to a site (issue 12, point 1).

The envelope key alone must not be able to restate a genuine payload's
bundle id, sequence, kind or times: the Director timestamp, signed by another
online key, binds them. A thief of both online keys can freeze a site (a
huge sequence, a floor far ahead); an offline-signed Director root rotation,
exported by the hub after the officers' ceremony, must still reach the site
and undo it. Everything is signed with the hub's and the officers' real keys,
in both bundle formats (``bundle_format``).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.bundlecraft import (
    edit_envelope,
    envelope_signer,
    forge_bundle,
    resign_bundle_claims,
    resign_envelope,
)
from helpers.hubenv import HUB_TIME
from helpers.rotation import RotationCeremony, rotate_roots
from helpers.spokeenv import (
    SITE_ID,
    SPOKE_TIME,
    World,
    accept_import,
    refuse_import,
    spoke_clock,
)

from airlock.bundles import tuf as tufrepo
from airlock.bundles.audit import AuditLog
from airlock.bundles.clock import FixedClock, utc_iso
from airlock.bundles.errors import (
    FreshnessError,
    IntegrityError,
    StaleBundleError,
    TrustError,
    UsageError,
)
from airlock.bundles.models import BundleKind
from airlock.hub.context import HubContext
from airlock.hub.export import MediaOptions, commit_export, export, plan_export
from airlock.hub.trust import update_trust
from airlock.spoke.site import SpokeHome, reset_floor
from airlock.spoke.status import read_status

HUGE = 2**53 - 1
"""The largest sequence the strict envelope schema admits: what a thief would choose."""
LATER = SPOKE_TIME + dt.timedelta(hours=1)
"""The site's (right) clock for imports after the first."""
FAST = SPOKE_TIME + dt.timedelta(days=25)
"""The site's clock while it ran 25 days ahead."""


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"sequence": HUGE}, "sequence", id="sequence-max"),
        pytest.param({"kind": BundleKind.REVOCATION}, "kind", id="kind"),
        pytest.param({"bundle_id": "relabelled"}, "bundle_id", id="bundle-id"),
        pytest.param({"created": HUB_TIME - dt.timedelta(hours=1)}, "created", id="created"),
        pytest.param({"expires": HUB_TIME + dt.timedelta(days=400)}, "expires", id="expires"),
    ],
)
def test_the_envelope_key_alone_cannot_restate_a_genuine_payload(
    hub: HubContext,
    spoke: SpokeHome,
    media: Path,
    bundle_format: MediaOptions,
    change: dict[str, Any],
    field: str,
) -> None:
    export(hub, SITE_ID, media / "genuine", media=bundle_format)
    shutil.copytree(media / "genuine", media / "relabelled")
    resign_envelope(media / "relabelled", [envelope_signer(hub)], **change)

    error = refuse_import(spoke, media / "relabelled", IntegrityError, f"states {field} ")
    assert "the verified Director timestamp signed" in error.message
    assert "envelope key" in error.hint
    assert read_status(spoke).last_sequence == 0

    assert accept_import(spoke, media / "genuine").sequence == 1  # the genuine bundle still does


def _poison(hub: HubContext, media: Path, bundle_format: MediaOptions) -> Path:
    """What a thief of both online keys makes from the hub's own next plan.

    The hub ships the same plan as bundle 2; the thief's copy claims sequence
    2^53-1 and a creation time 25 days ahead, in the envelope and in the
    re-signed Director timestamp alike.
    """
    plan = plan_export(hub, SITE_ID)
    commit_export(hub, plan, media / "bundle-2", bundle_format)
    expires = FAST + dt.timedelta(days=30)
    metadata = resign_bundle_claims(
        hub, plan.metadata, sequence=HUGE, created=utc_iso(FAST), expires=utc_iso(expires)
    )
    out = media / "poison"
    forge_bundle(
        hub,
        plan,
        out,
        media=bundle_format,
        metadata=metadata,
        sequence=HUGE,
        created=FAST,
        expires=expires,
    )
    return out


def test_an_offline_root_rotation_unfreezes_a_site_the_online_keys_froze(
    world: World,
    hub: HubContext,
    hub_clock: FixedClock,
    spoke: SpokeHome,
    media: Path,
    tmp_path: Path,
    bundle_format: MediaOptions,
) -> None:
    export(hub, SITE_ID, media / "bundle-1", media=bundle_format)
    accept_import(spoke, media / "bundle-1")
    poison = _poison(hub, media, bundle_format)
    accept_import(spoke, poison, spoke_clock(FAST))  # caught while the site clock ran ahead
    assert read_status(spoke).last_sequence == HUGE

    # frozen: the clock is right again, every genuine bundle is refused
    hub_clock.advance(dt.timedelta(minutes=5))
    export(hub, SITE_ID, media / "bundle-3", media=bundle_format)
    refuse_import(spoke, media / "bundle-3", FreshnessError, "earlier than the newest verified")
    refuse_import(spoke, media / "bundle-3", StaleBundleError, "not newer", spoke_clock(FAST))
    with pytest.raises(UsageError, match="nothing to lower"):  # the floor is a signed time
        reset_floor(spoke, "try the site-side recovery", spoke_clock(LATER))

    # the officers rotate the Director root; the hub adopts it and exports
    rotation = RotationCeremony.copy_of(world.ceremony.out_dir, tmp_path / "rotation")
    rotate_roots(rotation, tufrepo.DIRECTOR, 1)
    update_trust(hub, rotation.directory)
    hub_clock.advance(dt.timedelta(minutes=5))
    envelope = export(hub, SITE_ID, media / "rotation", media=bundle_format)
    assert envelope.sequence == 4

    result = accept_import(spoke, media / "rotation", spoke_clock(LATER))
    assert result.sequence == 4
    status = read_status(spoke)
    assert (status.last_sequence, status.director_root_version) == (4, 2)
    assert status.time_floor == envelope.created.isoformat()
    entry = AuditLog(spoke.engine, "spoke").entries()[-1]
    assert json.loads(entry.details)["reset"] == {
        "director_root_version": 2,
        "sequence": {"old": HUGE, "new": 4},
        "time_floor": {"old": FAST.isoformat(), "new": envelope.created.isoformat()},
    }

    # a replay no longer advances the root: the normal checks refuse it
    refuse_import(spoke, media / "rotation", StaleBundleError, "not newer", spoke_clock(LATER))
    hub_clock.advance(dt.timedelta(minutes=5))
    export(hub, SITE_ID, media / "bundle-5", media=bundle_format)
    assert accept_import(spoke, media / "bundle-5", spoke_clock(LATER)).sequence == 5
    assert read_status(spoke).director_root_version == 2


def test_a_rotation_added_to_an_old_bundles_envelope_on_the_medium_is_refused(
    world: World,
    hub: HubContext,
    spoke: SpokeHome,
    media: Path,
    tmp_path: Path,
    bundle_format: MediaOptions,
) -> None:
    """``roots`` is unsigned: a genuine rotation pasted into a replayed bundle must not
    exempt it from the sequence check; its payload does not reach the new root."""
    export(hub, SITE_ID, media / "bundle-1", media=bundle_format)
    accept_import(spoke, media / "bundle-1")
    rotation = RotationCeremony.copy_of(world.ceremony.out_dir, tmp_path / "rotation")
    v2 = rotate_roots(rotation, tufrepo.DIRECTOR, 1).to_dict()
    edit_envelope(media / "bundle-1", lambda doc: doc["roots"]["director"].append(v2))

    error = refuse_import(
        spoke, media / "bundle-1", TrustError, "carries Director root version 2", spoke_clock(LATER)
    )
    assert "verifies only up to version 1" in error.message
    assert read_status(spoke).director_root_version == 1
