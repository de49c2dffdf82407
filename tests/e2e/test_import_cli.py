"""The same refusals through the real ``airlock spoke import`` process.

What the site admin sees: the documented exit code, one ``error:`` line naming
what failed, one ``what to do:`` line, nothing on standard output, and a
spoke that did not change (checked by the same helper as the API tests).
"""

from __future__ import annotations

import datetime as dt
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.bundlecraft import (
    blob_entries,
    edit_envelope,
    flip_byte,
    forge_bundle,
    forge_raw_bundle,
    link,
    metadata_entries,
)
from helpers.spokeenv import (
    OTHER_SITE_ID,
    SITE_ID,
    World,
    accept_import,
    cli_refuse_import,
)

from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import (
    AirlockError,
    DecryptionError,
    FreshnessError,
    IntegrityError,
    SignatureError,
    StaleBundleError,
    UnsafeArchiveError,
    WrongSiteError,
)
from airlock.hub.context import HubContext
from airlock.hub.export import export, plan_export
from airlock.spoke.site import SpokeHome


def _edited_envelope(world: World, hub: HubContext, out: Path) -> None:
    export(hub, SITE_ID, out)
    edit_envelope(out, lambda doc: doc["signed"].update(sequence=99))


def _flipped_byte(world: World, hub: HubContext, out: Path) -> None:
    export(hub, SITE_ID, out)
    flip_byte(out / "payload.age", os.path.getsize(out / "payload.age") // 2)


def _truncated(world: World, hub: HubContext, out: Path) -> None:
    export(hub, SITE_ID, out)
    os.truncate(out / "payload.age", 1000)


def _other_site(world: World, hub: HubContext, out: Path) -> None:
    export(hub, OTHER_SITE_ID, out)


def _expired(world: World, hub: HubContext, out: Path) -> None:
    clock = hub.clock
    assert isinstance(clock, FixedClock)
    clock.advance(dt.timedelta(days=-31))
    export(hub, SITE_ID, out)


def _symlink(world: World, hub: HubContext, out: Path) -> None:
    plan = plan_export(hub, SITE_ID)
    evil = link(f"blobs/sha256/{plan.blobs[0].sha256}", "/etc/shadow", tarfile.SYMTYPE)
    forge_raw_bundle(hub, plan, out, [*metadata_entries(plan), evil, *blob_entries(plan)])


def _other_recipient(world: World, hub: HubContext, out: Path) -> None:
    plan = plan_export(hub, SITE_ID)
    forge_bundle(hub, plan, out, recipients=[world.other_site.identity.age_recipient])


CASES: dict[str, tuple[Callable[[World, HubContext, Path], None], type[AirlockError], str]] = {
    "edited-envelope": (_edited_envelope, SignatureError, "not signed by a trusted key"),
    "flipped-byte": (_flipped_byte, IntegrityError, "does not match the SHA-256"),
    "truncated": (_truncated, IntegrityError, "has 1000 bytes, the signed envelope says"),
    "other-site": (_other_site, WrongSiteError, "the bundle is for site 'plant-9'"),
    "expired": (_expired, FreshnessError, "the bundle expired at"),
    "symlink": (_symlink, UnsafeArchiveError, "is a symbolic link"),
    "other-recipient": (_other_recipient, DecryptionError, "not encrypted to this site"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_cli_refuses_with_the_documented_exit_code_and_a_hint(
    world: World, hub: HubContext, spoke: SpokeHome, media: Path, case: str
) -> None:
    make, expected, message = CASES[case]
    make(world, hub, media / case)
    proc = cli_refuse_import(spoke, media / case, expected, message)
    assert proc.returncode == expected.exit_code


def test_the_cli_says_a_replayed_bundle_changed_nothing(
    hub: HubContext, spoke: SpokeHome, media: Path
) -> None:
    export(hub, SITE_ID, media / "bundle-1")
    assert accept_import(spoke, media / "bundle-1").sequence == 1

    proc = cli_refuse_import(spoke, media / "bundle-1", StaleBundleError, "nothing changed")
    assert "is not newer than the imported 1" in proc.stderr
    assert "no action needed" in proc.stderr
