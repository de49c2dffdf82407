"""`airlock spoke simulate`: fault specifications, and shards that stop with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from helpers.spokeenv import AIRLOCK, SITE_PASSPHRASE
from sqlmodel import Session, select

from airlock.bundles.errors import UsageError
from airlock.node import FaultSpec
from airlock.spoke.nodes import SimulationSettings, parse_fault, shard
from airlock.spoke.site import PASSPHRASE_ENV, EnrolledNode, SpokeHome


def test_a_fault_names_a_version_and_its_faults() -> None:
    assert parse_fault("iris@2:latency_ms=30,error_rate=0.05,wrong_rate=0.1") == (
        "iris@2",
        FaultSpec(latency_ms=30, error_rate=0.05, wrong_rate=0.1),
    )
    for bad in ("iris:latency_ms=3", "iris@2", "iris@2:speed=3", "iris@2:error_rate=2"):
        with pytest.raises(UsageError):
            parse_fault(bad)


def test_shards_cover_every_node_once() -> None:
    settings = SimulationSettings(spoke_url="http://127.0.0.1:1", nodes=10)
    parts = [shard(settings, i, 3) for i in range(3)]
    ids = [node for part in parts for node in part.node_ids()]
    assert ids == settings.node_ids()


def test_stopping_the_parent_stops_every_shard(fleet_spoke: SpokeHome) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    env[PASSPHRASE_ENV] = SITE_PASSPHRASE
    parent = subprocess.Popen(
        [str(AIRLOCK), "spoke", "simulate", "--home", str(fleet_spoke.path),
         "--url", "http://127.0.0.1:9", "--nodes", "2", "--processes", "2", "--rps", "0"],
        env=env, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with Session(fleet_spoke.engine) as session:
                if len(session.exec(select(EnrolledNode)).all()) == 2:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the shards never enrolled their nodes")
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=60) == 0
        # nothing of the process group is left: the shards stopped with their parent
        time.sleep(0.5)
        with pytest.raises(ProcessLookupError):
            os.killpg(parent.pid, 0)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
