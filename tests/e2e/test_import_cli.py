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
    FORMAT_1,
    FORMAT_2,
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
from airlock.hub.export import MediaOptions, export, plan_export
from airlock.spoke.site import SpokeHome

Make = Callable[[World, HubContext, Path], None]


def _edited_envelope(world: World, hub: HubContext, out: Path) -> None:
    export(hub, SITE_ID, out)
    edit_envelope(out, lambda doc: doc["signed"].update(sequence=99))


def _flipped_byte(name: str, media: MediaOptions) -> Make:
    """One bit of the file whose SHA-256 the envelope signs (``payload.age``, ``site.age``)."""

    def make(world: World, hub: HubContext, out: Path) -> None:
        export(hub, SITE_ID, out, media=media)
        flip_byte(out / name, os.path.getsize(out / name) // 2)

    return make


def _truncated(name: str, media: MediaOptions) -> Make:
    def make(world: World, hub: HubContext, out: Path) -> None:
        export(hub, SITE_ID, out, media=media)
        os.truncate(out / name, 1000)

    return make


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


CASES: dict[str, tuple[Make, type[AirlockError], str]] = {
    "edited-envelope": (_edited_envelope, SignatureError, "not signed by a trusted key"),
    "flipped-byte": (
        _flipped_byte("site.age", FORMAT_2),
        IntegrityError,
        "site.age does not match the SHA-256",
    ),
    "flipped-byte-format-1": (
        _flipped_byte("payload.age", FORMAT_1),
        IntegrityError,
        "payload.age does not match the SHA-256",
    ),
    "truncated": (
        _truncated("site.age", FORMAT_2),
        IntegrityError,
        "has 1000 bytes, the signed envelope says",
    ),
    "truncated-format-1": (
        _truncated("payload.age", FORMAT_1),
        IntegrityError,
        "has 1000 bytes, the signed envelope says",
    ),
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
