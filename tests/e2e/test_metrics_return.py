"""The return path end to end, through the real commands in real processes.

Node figures as the site's node service stores them → ``airlock spoke
export-metrics`` → ``airlock hub import-metrics`` → ``airlock hub report
fleet``; the hub's drift verdict goes out as a retraining request; the hub's
next bundle acknowledges the site's checkpoint and the site's next metrics
bundle proves its log only grew. The fleet hub and spoke are real (iris@1..3
released, exported and imported); the hub's return path reached the spoke in
the Director metadata of those exports. Real keys, age, TUF, onnxruntime.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import Any

import pyrage
import pytest
from helpers.fleetenv import Fleet
from helpers.hubenv import hub_secrets
from helpers.metricsenv import run_hub_airlock
from helpers.spokeenv import SITE_ID, run_airlock
from sqlalchemy import text
from sqlmodel import Session, select

from airlock.bundles.audit import AuditLog, HubReturnRecord
from airlock.bundles.clock import FixedClock, utc_iso
from airlock.bundles.db import session_scope
from airlock.bundles.events import EVENT_TYPES, OutboxEvent
from airlock.bundles.metrics import PAYLOAD_FILE, LatencySketch
from airlock.hub import trust as return_keys
from airlock.hub.context import HubContext, open_hub
from airlock.spoke.site import (
    EnrolledNode,
    MetricsExportRecord,
    MetricWindow,
    SpokeHome,
)

NODES = [f"plant7-edge-{i:02d}" for i in range(1, 9)]
ADDRESSES = [f"192.168.40.{10 + i}" for i in range(len(NODES))]
REQUESTS, ERRORS = 100, 2
SKEWED = {"0": 95, "1": 5}
"""The field answers class 0 almost always; the balanced validation set does not."""


def seed_site(home: SpokeHome, received: list[dt.datetime]) -> None:
    """Eight enrolled nodes serving iris@3 as the stable version, one window each per time."""
    with session_scope(home.engine) as session:
        for node, address in zip(NODES, ADDRESSES, strict=True):
            if session.get(EnrolledNode, node) is None:
                session.add(
                    EnrolledNode(
                        node_id=node,
                        keyid=f"key-{node}",
                        labels={"address": address, "hostname": f"{node}.plant7.example"},
                        enrolled_at=utc_iso(received[0] - dt.timedelta(hours=1)),
                        enrolled_by="site-admin",
                    )
                )
            for when in received:
                session.add(
                    MetricWindow(
                        node_id=node, model="iris", version="3", role="stable", ring="stable",
                        window_start=utc_iso(when - dt.timedelta(minutes=1)),
                        window_end=utc_iso(when), received_at=utc_iso(when),
                        requests=REQUESTS, errors=ERRORS,
                        latency=LatencySketch.of([4.0, 6.0, 9.0]).to_dict(),
                        predictions=dict(SKEWED), confidence={"0.9": 80, "0.6": 20},
                    )
                )  # fmt: skip


@pytest.fixture
def hub_home(fleet: Fleet, tmp_path: Path) -> Path:
    """A copy of the hub that exported the fleet spoke's bundles."""
    hub = fleet.new_hub(tmp_path / "hub")
    hub.close()
    return tmp_path / "hub"


def ok(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON a command printed, after checking it succeeded."""
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def test_figures_reach_the_fleet_report_and_drift_requests_retraining(
    fleet_spoke: SpokeHome, hub_home: Path, tmp_path: Path
) -> None:
    now = dt.datetime.now(dt.UTC)
    seed_site(fleet_spoke, [now - dt.timedelta(minutes=30), now - dt.timedelta(minutes=20)])
    bundle = tmp_path / "media" / "metrics-1"

    exported = ok(run_airlock("spoke", "export-metrics", "--home", str(fleet_spoke.path),
                              "--out", str(bundle), "--json"))  # fmt: skip
    assert exported["sequence"] == 1

    # what crossed the gap: decrypt as the hub does, and look for every identifier
    hub = open_hub(hub_home, hub_secrets, clock=FixedClock(now))
    try:
        plaintext = _decrypt(hub, bundle)
    finally:
        hub.close()
    for identifier in [*NODES, *ADDRESSES, "plant7.example", "key-plant7"]:
        assert identifier.encode() not in plaintext, identifier
    assert b'"nodes":8' in plaintext and b'"version":"3"' in plaintext

    imported = ok(run_hub_airlock("hub", "import-metrics", "--home", str(hub_home), str(bundle),
                                  "--json"))  # fmt: skip
    checkpoint = imported["checkpoint"]
    assert isinstance(checkpoint, dict) and checkpoint["consistency"] == "first"
    alerts = imported["alerts"]
    assert isinstance(alerts, list) and [a["kind"] for a in alerts] == ["drift"]

    report = ok(run_hub_airlock("hub", "report", "fleet", "--home", str(hub_home),
                                "--html", str(tmp_path / "fleet.html"), "--json"))  # fmt: skip
    versions = report["versions"]
    assert isinstance(versions, list)
    [iris3] = [v for v in versions if (v["model"], v["version"]) == ("iris", "3")]
    assert iris3["requests"] == 2 * len(NODES) * REQUESTS
    assert iris3["errors"] == 2 * len(NODES) * ERRORS
    assert iris3["status"] == "drift" and iris3["drift"] > 0.2
    html = (tmp_path / "fleet.html").read_text()
    assert "<svg" in html and "iris" in html and not any(n in html for n in NODES)

    hub = open_hub(hub_home, hub_secrets, clock=FixedClock(now))
    try:
        with Session(hub.engine) as session:
            retrain = session.exec(
                select(OutboxEvent).where(OutboxEvent.type == EVENT_TYPES["fleet.drift"])
            ).all()
    finally:
        hub.close()
    [event] = retrain
    assert event.subject == "iris@3"
    data = event.body["data"]
    assert data["request"] == "retrain" and data["predictions"] == {
        "0": 2 * len(NODES) * SKEWED["0"],
        "1": 2 * len(NODES) * SKEWED["1"],
    }
    assert "lineage" in data


def first_export(home: SpokeHome, tmp_path: Path) -> dict[str, Any]:
    """Seeds the site and exports its first metrics bundle, ``metrics-1``; its ``--json``."""
    seed_site(home, [dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)])
    return ok(run_airlock("spoke", "export-metrics", "--home", str(home.path),
                          "--out", str(tmp_path / "metrics-1"), "--json"))  # fmt: skip


def first_export_acknowledged(home: SpokeHome, hub_home: Path, tmp_path: Path) -> dict[str, Any]:
    """The site's first metrics export, imported at the hub and acknowledged back.

    :func:`first_export`, imported at the hub; the hub's next bundle carries
    the cosigned checkpoint back and the site imports it.

    Returns:
        The first export's ``--json`` output.
    """
    first = first_export(home, tmp_path)
    spoke = str(home.path)
    ok(run_hub_airlock("hub", "import-metrics", "--home", str(hub_home),
                       str(tmp_path / "metrics-1"), "--json"))  # fmt: skip
    proc = run_hub_airlock("hub", "export", "--home", str(hub_home), "--site", SITE_ID,
                           "--out", str(tmp_path / "bundle"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    proc = run_airlock("spoke", "import", "--home", spoke, str(tmp_path / "bundle"))
    assert proc.returncode == 0, proc.stderr
    return first


def test_the_hub_witnesses_the_site_log_across_a_round_trip(
    fleet_spoke: SpokeHome, hub_home: Path, tmp_path: Path
) -> None:
    # the hub witnesses the first export; its next bundle carries the checkpoint back
    first = first_export_acknowledged(fleet_spoke, hub_home, tmp_path)
    spoke = str(fleet_spoke.path)
    with Session(fleet_spoke.engine) as session:
        back = session.get(HubReturnRecord, 1)
    assert back is not None and back.acknowledged_sequence == 1
    assert back.acknowledged_size == first["checkpoint"]["size"]

    # the site's next metrics bundle proves its log grew from there; the hub checks it
    ok(run_airlock("spoke", "export-metrics", "--home", spoke,
                   "--out", str(tmp_path / "metrics-2"), "--json"))  # fmt: skip
    second = ok(run_hub_airlock("hub", "import-metrics", "--home", str(hub_home),
                                str(tmp_path / "metrics-2"), "--json"))  # fmt: skip
    checkpoint = second["checkpoint"]
    assert isinstance(checkpoint, dict)
    assert checkpoint["consistency"] == f"proof from {first['checkpoint']['size']}"
    assert second["missing_sequences"] == []

    # the site admin sees where the return path stands
    status = ok(run_airlock("spoke", "status", "--home", spoke, "--json"))["metrics"]
    assert status["hub_recipient_known"] and status["last_export"]["sequence"] == 2
    assert status["hub_acknowledged"] == {"sequence": 1, "log_size": first["checkpoint"]["size"]}


def _decrypt(hub: HubContext, bundle: Path) -> bytes:
    identity = return_keys.hub_identity(hub)
    data: bytes = pyrage.decrypt((bundle / PAYLOAD_FILE).read_bytes(), [identity])
    return data


def test_a_log_truncated_below_what_the_hub_acknowledged_is_caught_at_the_site(
    fleet_spoke: SpokeHome, hub_home: Path, tmp_path: Path
) -> None:
    first = first_export_acknowledged(fleet_spoke, hub_home, tmp_path)
    spoke = str(fleet_spoke.path)
    acknowledged = first["checkpoint"]["size"]
    verified = ok(run_airlock("audit", "verify", "--home", spoke, "--json"))
    assert verified["acknowledged_checked"] == acknowledged

    # a dishonest admin removes the newest entries and every local trace of the checkpoint
    with fleet_spoke.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq >= :cut"), {"cut": acknowledged - 2})
        conn.execute(text("DELETE FROM audit_checkpoint WHERE size >= :cut"),
                     {"cut": acknowledged - 2})  # fmt: skip
    proc = run_airlock("audit", "verify", "--home", spoke)
    assert proc.returncode == 10, proc.stdout + proc.stderr
    assert "(truncated)" in proc.stderr and "hub-acknowledged" in proc.stderr
    assert f"at entry {acknowledged - 2}" in proc.stderr

    out = tmp_path / "metrics-2"
    proc = run_airlock("spoke", "export-metrics", "--home", spoke, "--out", str(out))
    assert proc.returncode == 22, proc.stdout + proc.stderr
    assert f"of the {acknowledged} entries" in proc.stderr and "what to do:" in proc.stderr
    assert not out.exists()
    with Session(fleet_spoke.engine) as session:
        assert session.exec(select(MetricsExportRecord)).all()[-1].sequence == 1
    last = AuditLog(fleet_spoke.engine, "spoke").entries()[-1]
    assert (last.action, last.outcome) == ("spoke.metrics.export", "refused")


def test_a_deleted_checkpoint_row_fails_audit_verify(
    fleet_spoke: SpokeHome, tmp_path: Path
) -> None:
    first = first_export(fleet_spoke, tmp_path)
    spoke = str(fleet_spoke.path)
    size = first["checkpoint"]["size"]
    ok(run_airlock("audit", "verify", "--home", spoke, "--json"))
    with fleet_spoke.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_checkpoint WHERE size = :size"), {"size": size})
    proc = run_airlock("audit", "verify", "--home", spoke)
    assert proc.returncode == 10, proc.stdout + proc.stderr
    assert f"at entry {size} (missing-checkpoint)" in proc.stderr
