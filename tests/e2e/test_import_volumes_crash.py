"""A format-2 import killed with SIGKILL halfway resumes and reads little of what it verified.

A real ``airlock spoke import`` process reads a bundle of a 48 MB model in
volumes; it is killed (kill -9) once its resumable state records verified
chunks. The spoke must stay consistent (nothing staged, the state private and
readable), and the next import — in-process, counting the bytes read from the
volumes — completes it without reading everything again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers.onnx_models import make_onnx_model
from helpers.spokeenv import AIRLOCK, SITE_ID, SITE_PASSPHRASE, dump_rows, spoke_clock
from helpers.v2craft import write_v2_bundle

from airlock.bundles.volumes import minimum_volume_size
from airlock.hub.context import HubContext
from airlock.hub.export import assign, plan_export
from airlock.hub.intake import add_model
from airlock.spoke.importing import import_media, import_status
from airlock.spoke.site import PASSPHRASE_ENV, SpokeHome

pytestmark = pytest.mark.slow


def verified_chunks(home: Path) -> int:
    """Chunks the (only) pending import's state records as verified (0: none yet)."""
    import base64

    from airlock.bundles.volumes._state import newest_document

    states = list(home.glob("staging/imports/*/assembly"))
    doc = newest_document(states[0]) if states else None
    if doc is None:
        return 0
    return sum(
        bin(byte).count("1")
        for volume in doc["volumes"].values()
        for byte in base64.b64decode(volume["done"])
    )


def test_kill_9_halfway_then_resume(
    hub: HubContext, spoke: SpokeHome, media: Path, tmp_path: Path
) -> None:
    model = make_onnx_model(tmp_path / "big" / "model.onnx", external_data=True, width=12 << 20)
    add_model(hub, "big", "1", model.parent)
    assign(hub, SITE_ID, "big", "1")
    plan = plan_export(hub, SITE_ID)
    bundle = write_v2_bundle(
        hub, plan, media / "bundle", volume_size=minimum_volume_size(plan.recipients) * 8
    )
    total = sum(v.size for v in bundle.data_volumes())
    rows = dump_rows(spoke)

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    env.update({"AIRLOCK_PRINCIPAL": "site-admin", PASSPHRASE_ENV: SITE_PASSPHRASE})
    proc = subprocess.Popen(
        [str(AIRLOCK), "spoke", "import", "--home", str(spoke.path), str(bundle.root)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while verified_chunks(spoke.path) == 0:
        assert proc.poll() is None, "the import ended before it checkpointed anything"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    done = verified_chunks(spoke.path)
    assert 0 < done < 48, "the kill came after everything was verified"

    assert dump_rows(spoke) == rows, "a killed import changed the spoke's state"
    assert not spoke.blob_dir.exists() or not any(spoke.blob_dir.iterdir())
    [status] = import_status(spoke, [], spoke_clock())
    assert status.files_complete < status.files_total

    reads: list[int] = []
    result = import_media(spoke, [bundle.root], spoke_clock(), on_read=reads.append)
    assert "big@1" in result.staged
    assert result.volumes["resumed"] or len(result.volumes["read"]) < len(bundle.data_volumes())
    assert sum(reads) < total, "the resumed import read every volume again"
    assert not list(spoke.path.glob("staging/imports/*")), "the completed import kept its state"
