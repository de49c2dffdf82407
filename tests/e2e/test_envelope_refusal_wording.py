"""What the operator is told: a bundle taken to the wrong side, metadata of the wrong length,
and a metrics envelope that is not a small regular file.

* A metrics bundle given to ``airlock spoke import`` (or a hub's bundle given to
  ``airlock hub import-metrics``) is refused either way; the message names the
  direction and the command that takes it, instead of "not signed by a trusted key".
* Metadata longer than its signed length and metadata shorter than it are the
  same fault: IntegrityError (exit 12), with a hint — in both bundle formats.
* At the hub, ``envelope.json`` of a metrics bundle is read like the spoke's:
  lstat first, bounded, never blocking; refused as bad media (exit 5) with a
  hint, audited, nothing stored.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.bundlecraft import forge_bundle
from helpers.metricsenv import MetricsSite, assert_refused, row_counts, run_hub_airlock
from helpers.spokeenv import SITE_ID, assert_error_output, refuse_import

from airlock.bundles.bundle import ENVELOPE_FILE
from airlock.bundles.errors import IntegrityError, MediaError, UsageError
from airlock.hub.context import HubContext
from airlock.hub.export import MediaOptions, export, plan_export
from airlock.hub.fleet import import_metrics
from airlock.spoke.site import SpokeHome

# --- the wrong direction ------------------------------------------------------------------------


def test_a_metrics_bundle_given_to_the_spoke_names_the_direction(
    fleet_spoke: SpokeHome, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    bundle = metrics_site.bundle(tmp_path / "metrics-1")
    error = refuse_import(fleet_spoke, bundle, UsageError, "this is a metrics bundle")
    assert "(site → hub)" in error.message and "airlock hub import-metrics" in error.message
    assert "not signed" not in error.message


def test_a_hub_bundle_given_to_import_metrics_names_the_direction(
    fleet_hub: HubContext, tmp_path: Path, bundle_format: MediaOptions
) -> None:
    export(fleet_hub, SITE_ID, tmp_path / "bundle", full=True, media=bundle_format)
    before = row_counts(fleet_hub)
    with pytest.raises(UsageError, match="this is a full bundle") as caught:
        import_metrics(fleet_hub, tmp_path / "bundle")
    assert "(hub → site)" in caught.value.message
    assert "airlock spoke import" in caught.value.message and caught.value.hint
    assert assert_refused(fleet_hub, before)["error"] == "UsageError"


def test_the_cli_names_the_direction_at_the_hub(fleet_hub: HubContext, tmp_path: Path) -> None:
    export(fleet_hub, SITE_ID, tmp_path / "bundle", full=True)
    home = str(fleet_hub.home.root)
    proc = run_hub_airlock("hub", "import-metrics", "--home", home, str(tmp_path / "bundle"))
    assert proc.returncode == UsageError.exit_code
    assert_error_output(proc.stderr, "this is a full bundle (hub → site)")


# --- metadata of another length than signed -----------------------------------------------------


def _longer(data: bytes) -> bytes:
    return data + b" "


def _shorter(data: bytes) -> bytes:
    return data[:-1]


@pytest.mark.parametrize("change", [_longer, _shorter], ids=["longer", "shorter"])
def test_metadata_of_another_length_than_signed_is_an_integrity_error(
    hub: HubContext,
    spoke: SpokeHome,
    media: Path,
    bundle_format: MediaOptions,
    change: Callable[[bytes], bytes],
) -> None:
    """The Director snapshot, whose length the timestamp signs, one byte off either way."""
    plan = plan_export(hub, SITE_ID)
    metadata = [
        (name, change(data) if name.endswith(".snapshot.json") and "/director/" in name else data)
        for name, data in plan.metadata
    ]
    forge_bundle(hub, plan, media / "bundle", media=bundle_format, metadata=metadata)
    error = refuse_import(spoke, media / "bundle", IntegrityError, "Director metadata")
    assert error.exit_code == 12 and "altered" in error.hint


# --- a metrics envelope that is not a small regular file ----------------------------------------


def _move_aside(bundle: Path) -> Path:
    real = bundle.parent / "real-envelope.json"
    (bundle / ENVELOPE_FILE).rename(real)
    return real


def _symlink(bundle: Path) -> None:
    (bundle / ENVELOPE_FILE).symlink_to(_move_aside(bundle))


def _dev_zero(bundle: Path) -> None:
    _move_aside(bundle)
    (bundle / ENVELOPE_FILE).symlink_to("/dev/zero")


def _fifo(bundle: Path) -> None:
    _move_aside(bundle)
    os.mkfifo(bundle / ENVELOPE_FILE)


def _directory(bundle: Path) -> None:
    _move_aside(bundle)
    (bundle / ENVELOPE_FILE).mkdir()


def _sparse(bundle: Path) -> None:
    os.truncate(bundle / ENVELOPE_FILE, 3 << 29)


MAKERS: dict[str, tuple[Callable[[Path], None], str]] = {
    "symlink": (_symlink, "is a symbolic link"),
    "dev-zero": (_dev_zero, "is a symbolic link"),
    "fifo": (_fifo, "is a named pipe"),
    "directory": (_directory, "is a directory"),
    "sparse-1.5-GiB": (_sparse, "1610612736 bytes"),
}


@pytest.mark.parametrize("case", list(MAKERS))
def test_a_metrics_envelope_that_is_not_a_small_regular_file_is_refused(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path, case: str
) -> None:
    make, message = MAKERS[case]
    bundle = metrics_site.bundle(tmp_path / "m1")
    make(bundle)
    before = row_counts(fleet_hub)
    with pytest.raises(MediaError, match=message) as caught:
        import_metrics(fleet_hub, bundle)
    assert type(caught.value) is MediaError and caught.value.hint
    details = assert_refused(fleet_hub, before, outcome="failure")
    assert details["error"] == "MediaError" and details["hint"]


def test_the_cli_refuses_a_symlinked_metrics_envelope_with_exit_5(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    bundle = metrics_site.bundle(tmp_path / "m1")
    _symlink(bundle)
    before = row_counts(fleet_hub)
    proc = run_hub_airlock("hub", "import-metrics", "--home", str(fleet_hub.home.root), str(bundle))
    assert proc.returncode == MediaError.exit_code, proc.stderr
    assert_error_output(proc.stderr, "is a symbolic link, not a regular file")
    assert_refused(fleet_hub, before, outcome="failure")
