"""``envelope.json`` that is huge or not a regular file: refused before it is read.

The envelope is read before anything else, inside the import lock. An
oversized file must cost no memory, and a symbolic link, a directory, a named
pipe (FIFO) or a device must be refused without being opened as one: a FIFO
would otherwise block the import — and the lock — forever. Each refusal is
bad media (exit 5) with a hint, audited, and changes nothing, whatever the
bundle's format (``bundle_format``: next to ``payload.age``, or to ``site.age``
and volumes, which also send the import down the format-2 path when the
envelope cannot be read).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.spokeenv import (
    AIRLOCK,
    SITE_ID,
    SITE_PASSPHRASE,
    assert_refused_unchanged,
    cli_refuse_import,
    refuse_import,
    take_snapshot,
)

from airlock.bundles.bundle import ENVELOPE_FILE, MAX_ENVELOPE_BYTES
from airlock.bundles.errors import MediaError
from airlock.hub.context import HubContext
from airlock.hub.export import MediaOptions, export
from airlock.spoke.site import PASSPHRASE_ENV, SpokeHome

HUGE = 3 << 29
"""1.5 GiB: a sparse file of this size costs no disk, but 1.5 GB of memory if read whole."""


def _replace_envelope(bundle: Path, make: Callable[[Path, Path], None]) -> None:
    """Moves the real envelope aside (outside the bundle) and puts ``make``'s thing in its place."""
    real = bundle.parent / f"{bundle.name}-real-envelope.json"
    (bundle / ENVELOPE_FILE).rename(real)
    make(bundle / ENVELOPE_FILE, real)


def _symlink_to_real(path: Path, real: Path) -> None:
    path.symlink_to(real)


def _symlink_to_dev_zero(path: Path, real: Path) -> None:
    path.symlink_to("/dev/zero")


def _directory(path: Path, real: Path) -> None:
    path.mkdir()


def _fifo(path: Path, real: Path) -> None:
    os.mkfifo(path)


NOT_A_FILE = {
    "symlink-to-a-valid-envelope": (_symlink_to_real, "is a symbolic link"),
    "symlink-to-dev-zero": (_symlink_to_dev_zero, "is a symbolic link"),
    "directory": (_directory, "is a directory"),
}


@pytest.mark.parametrize("case", list(NOT_A_FILE))
def test_an_envelope_that_is_not_a_regular_file_is_refused(
    hub: HubContext, spoke: SpokeHome, media: Path, bundle_format: MediaOptions, case: str
) -> None:
    make, message = NOT_A_FILE[case]
    export(hub, SITE_ID, media / "bundle", media=bundle_format)
    _replace_envelope(media / "bundle", make)
    error = refuse_import(spoke, media / "bundle", MediaError, message)
    assert "plain files" in error.hint


def _spoke_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    env.update(
        {"AIRLOCK_PRINCIPAL": "site-admin", "NO_COLOR": "1", PASSPHRASE_ENV: SITE_PASSPHRASE}
    )
    return env


def _run_import(home: SpokeHome, bundle: Path, timeout: float) -> tuple[int, str]:
    """``airlock spoke import`` in its own process: its exit code and standard error.

    Fails the test, instead of hanging, if the import has not ended after ``timeout``.
    """
    args = [str(AIRLOCK), "spoke", "import", "--home", str(home.path), str(bundle)]
    proc = subprocess.Popen(
        args, env=_spoke_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"the import still ran after {timeout}s: it blocked on envelope.json")
    return proc.returncode, stderr.decode()


def _measured_import(home: SpokeHome, bundle: Path) -> tuple[int, int, str]:
    """``airlock spoke import`` in its own process: its peak RSS in bytes, exit code, stderr."""
    args = [str(AIRLOCK), "spoke", "import", "--home", str(home.path), str(bundle)]
    proc = subprocess.Popen(
        args, env=_spoke_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS (KiB on Linux)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss * 1024, proc.returncode, stderr


def test_a_fifo_envelope_is_refused_without_blocking_the_import(
    hub: HubContext, spoke: SpokeHome, media: Path, bundle_format: MediaOptions
) -> None:
    """Nothing writes to the pipe: opening it for reading the ordinary way would block forever."""
    export(hub, SITE_ID, media / "bundle", media=bundle_format)
    _replace_envelope(media / "bundle", _fifo)
    before = take_snapshot(spoke)
    code, stderr = _run_import(spoke, media / "bundle", timeout=60)
    assert "is a named pipe" in stderr and "what to do: " in stderr, stderr
    assert "Traceback" not in stderr
    assert_refused_unchanged(spoke, before, MediaError, exit_code=code)


def test_a_huge_sparse_envelope_is_refused_before_it_is_read(
    hub: HubContext, spoke: SpokeHome, media: Path, bundle_format: MediaOptions
) -> None:
    """1.5 GiB of zeros: refused by its size, with the process's memory staying small."""
    export(hub, SITE_ID, media / "bundle", media=bundle_format)
    os.truncate(media / "bundle" / ENVELOPE_FILE, HUGE)
    baseline, _, _ = _measured_import(spoke, media / "bundle-that-is-not-there")  # exit 5 too
    before = take_snapshot(spoke)
    peak, code, stderr = _measured_import(spoke, media / "bundle")
    assert peak - baseline < 64 << 20, (
        f"peak memory {peak} bytes, {baseline} without it: it was read"
    )
    assert f"{HUGE} bytes" in stderr and "what to do: " in stderr, stderr
    assert_refused_unchanged(spoke, before, MediaError, exit_code=code)


def test_an_envelope_one_byte_over_the_limit_is_refused_through_the_cli(
    hub: HubContext, spoke: SpokeHome, media: Path, bundle_format: MediaOptions
) -> None:
    export(hub, SITE_ID, media / "bundle", media=bundle_format)
    with (media / "bundle" / ENVELOPE_FILE).open("ab") as handle:
        handle.write(b" " * (MAX_ENVELOPE_BYTES + 1 - handle.tell()))
    cli_refuse_import(spoke, media / "bundle", MediaError, "more than an envelope may have")


def test_a_bundle_path_that_is_a_file_is_refused(
    hub: HubContext, spoke: SpokeHome, media: Path
) -> None:
    (media / "not-a-bundle").write_bytes(b"x")
    refuse_import(
        spoke, media / "not-a-bundle", MediaError, "no envelope.json: not an Airlock bundle"
    )
