"""An export killed with SIGKILL at any moment leaves nothing that looks like a bundle.

A real ``airlock hub export`` process writes a ~20 MB model as volumes with
parity; it is killed (kill -9) at several moments after its work directory
appears. Afterwards the destination either does not exist, or holds a whole
bundle: an envelope that verifies and every volume it names, at its signed
size. Only the hidden ``.NAME.partial-…`` work directory may stay behind. The
hub then exports normally. Only the moment of the crash is the test's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers.hubenv import HUB_PASSPHRASE
from helpers.onnx_models import make_onnx_model
from helpers.spokeenv import AIRLOCK, SITE_ID

from airlock.bundles import tuf as tufrepo
from airlock.bundles.bundle import verify_envelope
from airlock.hub.context import HubContext, load_director_roots
from airlock.hub.export import assign
from airlock.hub.intake import add_model
from airlock.hub.store import PASSPHRASE_ENV

pytestmark = pytest.mark.slow

KILL_DELAYS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.4)
"""Seconds between the work directory appearing and SIGKILL."""


def _export(home: Path, out: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    env.update({"AIRLOCK_PRINCIPAL": "release-engineer", PASSPHRASE_ENV: HUB_PASSPHRASE})
    return subprocess.Popen(
        [
            str(AIRLOCK),
            "hub",
            "export",
            "--home",
            str(home),
            "--site",
            SITE_ID,
            "--out",
            str(out),
            "--full",
            "--format",
            "2",
            "--volume-size",
            "4M",
            "--parity",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _check_whole_or_absent(hub: HubContext, out: Path) -> bool:
    """True when ``out`` is a whole bundle; False when absent; fails on anything else."""
    if not out.exists():
        return False
    keys, threshold = tufrepo.envelope_keys(load_director_roots(hub).root.signed)
    envelope = verify_envelope((out / "envelope.json").read_bytes(), keys, threshold)
    assert envelope.site_part is not None
    assert (out / envelope.site_part.name).stat().st_size == envelope.site_part.size
    for volume in envelope.volumes:
        assert (out / volume.name).stat().st_size == volume.size, volume.label
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files inside"
    return True


def test_a_killed_export_leaves_no_half_written_bundle(hub: HubContext, tmp_path: Path) -> None:
    make_onnx_model(tmp_path / "big" / "model.onnx", external_data=True, seed=4, width=5_000_000)
    add_model(hub, "detector", "2", tmp_path / "big")
    assign(hub, SITE_ID, "detector", "2")
    media = tmp_path / "media"
    media.mkdir()
    outcomes = []
    for number, delay in enumerate(KILL_DELAYS):
        out = media / f"bundle-{number}"
        proc = _export(hub.home.root, out)
        deadline = time.monotonic() + 60
        while not any(media.glob(f".{out.name}.partial-*")) and proc.poll() is None:
            assert time.monotonic() < deadline, "the export never started writing"
            time.sleep(0.001)
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        outcomes.append(_check_whole_or_absent(hub, out))
    assert False in outcomes, "no kill landed before the bundle was complete"
    # The hub is consistent: the next export completes and is whole.
    after = media / "after"
    assert _export(hub.home.root, after).wait(timeout=120) == 0
    assert _check_whole_or_absent(hub, after)
