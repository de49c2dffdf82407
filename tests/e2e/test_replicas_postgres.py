"""Two spoke replicas on one PostgreSQL database import at the same moment.

A site that scales out runs several replicas of one spoke home (copies of
the same keys and ``airlock.toml``) on one PostgreSQL database. Two real
``airlock spoke import`` processes run against the machine's server, in a
schema of their own; a barrier file releases both into the commit together
(the two read the state, then both try to commit), so the race happens in
every round instead of by chance:

* replica A imports bundle n+1 while replica B imports bundle n, ten rounds:
  the site must end every round on bundle n+1 (never rolled back to n);
* both import the same bundle: it is recorded once (one success, one audit
  entry, one ``bundle.imported`` event); the other replica is refused.

The loser is refused with exit 14 ("another replica imported bundle N
meanwhile; nothing changed"), audited; running the import again, as the hint
says, verifies it against the new state.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers.hubenv import HUB_TIME
from helpers.pgenv import TEST_DATABASE, schema_prefix
from helpers.spokeenv import SITE_PASSPHRASE, SPOKE_INIT_TIME, World
from sqlmodel import Session, select

from airlock.bundles.audit import AuditLog, AuditRecord, verify_engine
from airlock.bundles.clock import FixedClock
from airlock.bundles.events import EVENT_TYPES, OutboxEvent
from airlock.hub.export import assign, export
from airlock.hub.sites import add_site_from_file
from airlock.spoke.site import IDENTITY_FILE, DirectorAssignment, SpokeHome, SpokeState, init_spoke

SITE = "plant-pg"
ROUNDS = 10
SAME_BUNDLE_ROUNDS = 3
RACE_MESSAGE = "another replica imported bundle"

WORKER = r"""
import json, os, sys, time
from pathlib import Path
from click.testing import CliRunner
import airlock.spoke.importing._commit as import_commit
from airlock.bundles.cli._main import main

name, peer, home, barrier, plan = sys.argv[1:6]
barrier, plan = Path(barrier), json.loads(plan)
real_commit = import_commit.commit_import
gate = {"round": None}


def gated_commit(*args, **kwargs):
    # Both replicas have read the state and verified their bundle: commit together.
    if gate["round"] is not None:
        (barrier / f"ready-{name}-{gate['round']}").touch()
        deadline = time.monotonic() + 60
        while not (barrier / f"ready-{peer}-{gate['round']}").exists():
            if time.monotonic() > deadline:
                break
            time.sleep(0.001)
        gate["round"] = None
    return real_commit(*args, **kwargs)


import_commit.commit_import = gated_commit
env = {k: None for k in os.environ if k.startswith("AIRLOCK_")}
env.update({"AIRLOCK_SPOKE_PASSPHRASE": os.environ["REPLICA_PASSPHRASE"], "COLUMNS": "200"})


def run(bundle):
    result = CliRunner().invoke(main, ["spoke", "import", "--home", home, bundle], env=env)
    return {"exit": result.exit_code, "stderr": result.stderr}


for number, bundle in enumerate(plan):
    while not (barrier / f"go-{number}").exists():
        time.sleep(0.005)
    gate["round"] = number
    attempts = [run(bundle)]
    if attempts[0]["exit"] == 14 and "another replica" in attempts[0]["stderr"]:
        attempts.append(run(bundle))  # what the hint says: import again
    out = barrier / f"result-{name}-{number}.json"
    out.with_suffix(".tmp").write_text(json.dumps(attempts))
    out.with_suffix(".tmp").replace(out)
"""


@dataclass(frozen=True)
class Replicas:
    """Two homes of one site on one PostgreSQL schema, and the bundles the hub made for it."""

    a: Path
    b: Path
    bundles: list[Path]
    bundle_ids: list[str]
    assigned: list[str]
    """The classifier version each bundle assigns."""


@pytest.fixture
def replicas(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Replicas]:
    with schema_prefix() as prefix:
        monkeypatch.setenv("AIRLOCK_DATABASE_URL", TEST_DATABASE)
        monkeypatch.setenv("AIRLOCK_DATABASE_SCHEMA", f"{prefix}_spoke")
        a, b = tmp_path / "replica-a", tmp_path / "replica-b"
        init_spoke(
            a,
            SITE,
            world.ceremony.image_root,
            world.ceremony.director_root,
            SITE_PASSPHRASE,
            clock=FixedClock(SPOKE_INIT_TIME),
        )
        monkeypatch.delenv("AIRLOCK_DATABASE_URL")
        monkeypatch.delenv("AIRLOCK_DATABASE_SCHEMA")
        shutil.copytree(a, b, symlinks=True)  # the second replica: the same keys and config

        hub = world.new_hub(tmp_path / "hub", FixedClock(HUB_TIME))
        bundles, ids, assigned = [], [], []
        try:
            add_site_from_file(hub, a / IDENTITY_FILE)
            for k in range(2 * ROUNDS + SAME_BUNDLE_ROUNDS):
                version = "1" if k % 2 == 0 else "2"
                assign(hub, SITE, "classifier", version)
                bundles.append(tmp_path / "media" / f"bundle-{k + 1}")
                ids.append(export(hub, SITE, bundles[-1], full=True).bundle_id)
                assigned.append(version)
        finally:
            hub.close()
        yield Replicas(a, b, bundles, ids, assigned)


def start_replica(name: str, peer: str, home: Path, barrier: Path, plan: list[Path]) -> Any:
    paths = [str(p) for p in plan]
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, name, peer, str(home), str(barrier), json.dumps(paths)],
        env={"PATH": "/usr/bin:/bin", "REPLICA_PASSPHRASE": SITE_PASSPHRASE},
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_result(barrier: Path, name: str, number: int, procs: list[Any]) -> list[dict[str, Any]]:
    path = barrier / f"result-{name}-{number}.json"
    deadline = time.monotonic() + 300
    while not path.exists():
        for proc in procs:
            assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"replica {name} hung in round {number}"
        time.sleep(0.02)
    result: list[dict[str, Any]] = json.loads(path.read_text())
    return result


def site_state(home: SpokeHome) -> tuple[int, str, list[str]]:
    with Session(home.engine) as session:
        state = session.get(SpokeState, 1)
        assert state is not None
        assigned = sorted(
            f"{row.model}@{row.version}" for row in session.exec(select(DirectorAssignment))
        )
        return state.last_sequence, state.last_bundle_id, assigned


def recorded(home: SpokeHome, bundle_id: str) -> tuple[int, int]:
    """How often the bundle was recorded as imported: audit successes, bundle.imported events."""
    with Session(home.engine) as session:
        successes = session.exec(
            select(AuditRecord).where(
                AuditRecord.action == "spoke.import",
                AuditRecord.outcome == "success",
                AuditRecord.object == bundle_id,
            )
        ).all()
        events = session.exec(
            select(OutboxEvent).where(
                OutboxEvent.type == EVENT_TYPES["bundle.imported"], OutboxEvent.subject == bundle_id
            )
        ).all()
    return len(successes), len(events)


def test_replicas_importing_at_once_never_roll_the_site_back_nor_record_twice(
    replicas: Replicas, tmp_path: Path
) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    newer = [replicas.bundles[2 * i + 1] for i in range(ROUNDS)]
    older = [replicas.bundles[2 * i] for i in range(ROUNDS)]
    same = replicas.bundles[2 * ROUNDS :]
    procs = [
        start_replica("a", "b", replicas.a, barrier, newer + same),
        start_replica("b", "a", replicas.b, barrier, older + same),
    ]
    home = SpokeHome(replicas.a)
    try:
        for number in range(ROUNDS):
            (barrier / f"go-{number}").touch()
            a = wait_result(barrier, "a", number, procs)
            b = wait_result(barrier, "b", number, procs)
            n_plus_1 = 2 * number + 2
            assert a[-1]["exit"] == 0, a
            assert b[-1]["exit"] in (0, 14), b
            assert site_state(home) == (
                n_plus_1,
                replicas.bundle_ids[n_plus_1 - 1],
                [f"classifier@{replicas.assigned[n_plus_1 - 1]}"],
            ), f"round {number}: the site was rolled back to bundle {n_plus_1 - 1} ({a}, {b})"
            losers = [r for r in (a[0], b[0]) if r["exit"] == 14 and RACE_MESSAGE in r["stderr"]]
            assert len(losers) == 1, "the two commits really met, and one was refused"
            assert "nothing changed" in losers[0]["stderr"]
            assert "what to do: run the import again" in losers[0]["stderr"]
            assert recorded(home, replicas.bundle_ids[n_plus_1 - 1]) == (1, 1)

        for offset in range(SAME_BUNDLE_ROUNDS):
            number = ROUNDS + offset
            (barrier / f"go-{number}").touch()
            outcomes = [wait_result(barrier, name, number, procs) for name in ("a", "b")]
            finals = sorted(attempts[-1]["exit"] for attempts in outcomes)
            assert finals == [0, 14], outcomes  # one imported it; the other: already imported
            bundle_id = replicas.bundle_ids[2 * ROUNDS + offset]
            assert recorded(home, bundle_id) == (1, 1), "the same bundle is recorded once"
            assert site_state(home)[:2] == (2 * ROUNDS + offset + 1, bundle_id)
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    refusals = [
        e
        for e in AuditLog(home.engine, "spoke").entries()
        if e.action == "spoke.import" and e.outcome == "refused"
    ]
    assert len(refusals) >= ROUNDS + SAME_BUNDLE_ROUNDS, "every refused replica was audited"
    assert all(json.loads(e.details)["error"] == "StaleBundleError" for e in refusals)
    report = verify_engine(home.engine)
    assert report.ok, report.problem
    home.engine.dispose()
