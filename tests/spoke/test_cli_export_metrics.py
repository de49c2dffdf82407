"""`airlock spoke export-metrics` in a real process: export, dry run, and refusals.

The fleet spoke gets a few nodes' metric windows (received a few minutes ago:
the command runs on the real clock) and a return path naming a hub whose age
identity the test holds.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pyrage
import pytest
from helpers.spokeenv import SITE_ID, assert_error_output, home_digest, run_airlock, table_rows
from sqlalchemy import MetaData, func, select
from sqlmodel import Session, delete

from airlock.bundles.audit import AuditLog, HubReturnRecord
from airlock.bundles.clock import SystemClock, utc_iso
from airlock.bundles.db import session_scope
from airlock.bundles.metrics import MetricsPayload, open_metrics_bundle
from airlock.spoke.site import MetricWindow, SpokeHome

NODES = [f"node-a{i}" for i in range(1, 7)]


@pytest.fixture
def hub_identity() -> pyrage.x25519.Identity:
    return pyrage.x25519.Identity.generate()


@pytest.fixture
def site(fleet_spoke: SpokeHome, hub_identity: pyrage.x25519.Identity) -> Iterator[SpokeHome]:
    """Six nodes reported iris@3 a few minutes ago; the hub's return path is known."""
    received = utc_iso(SystemClock().now() - dt.timedelta(minutes=3))
    with session_scope(fleet_spoke.engine) as session:
        for node in NODES:
            session.add(
                MetricWindow(
                    node_id=node, model="iris", version="3", role="candidate", ring="stable",
                    window_start=received, window_end=received, received_at=received,
                    requests=7, errors=1, predictions={"setosa": 7},
                )
            )  # fmt: skip
        session.merge(
            HubReturnRecord(
                id=1,
                hub_recipient=str(hub_identity.to_public()),
                witness_name="airlock/hub/test-hub",
            )
        )
    fleet_spoke.engine.dispose()  # the command opens the database itself
    yield fleet_spoke


def row_counts(home: SpokeHome) -> dict[str, int]:
    """Rows of every table of the spoke's database."""
    tables = MetaData()
    tables.reflect(home.engine)
    with Session(home.engine) as session:
        return {
            table.name: int(session.execute(select(func.count()).select_from(table)).scalar_one())
            for table in tables.sorted_tables
        }


def test_export_writes_a_bundle_the_hub_can_open(
    site: SpokeHome, hub_identity: pyrage.x25519.Identity, tmp_path: Path
) -> None:
    out = tmp_path / "media" / "metrics"
    proc = run_airlock("spoke", "export-metrics", "--home", str(site.path), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = {row[0]: row[1] for row in table_rows(proc.stdout) if len(row) == 2}
    assert (summary["sequence"], summary["cells"], summary["k"]) == ("1", "1", "5")
    assert summary["bundle"] == str(out)
    key = site.signing_key().public_key
    _, payload = open_metrics_bundle(out, lambda _: key, hub_identity, SystemClock().now())
    [cell] = payload.cells
    assert (cell.nodes, cell.requests, cell.predictions) == (6, 42, {"setosa": 42})

    again = run_airlock(
        "spoke", "export-metrics", "--home", str(site.path), "--out", str(tmp_path / "2"), "--json"
    )
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert (second["sequence"], second["cells"]) == (2, 0)
    assert second["window"]["start"] == payload.window_end


def test_dry_run_shows_what_would_leave_and_changes_nothing(
    site: SpokeHome, tmp_path: Path
) -> None:
    files, rows = home_digest(site), row_counts(site)
    out = tmp_path / "never"
    args = ("spoke", "export-metrics", "--home", str(site.path), "--out", str(out), "--dry-run")
    proc = run_airlock(*args, "--json", "--epsilon", "2", passphrase=None)  # no passphrase needed
    assert proc.returncode == 0, proc.stderr
    payload = MetricsPayload.from_dict(json.loads(proc.stdout))
    assert (payload.site_id, payload.sequence, payload.k) == (SITE_ID, 1, 5)
    assert payload.noise is not None and payload.noise.epsilon == 2.0
    [cell] = payload.cells
    assert (cell.nodes, cell.requests) == (6, 42)  # before noise: what the admin checks

    human = run_airlock(*args, "--epsilon", "2", passphrase=None)
    assert human.returncode == 0, human.stderr
    cells, answers, totals = table_rows(human.stdout)[-3:]
    assert cells[:2] == ["iris@3", "stable"] and cells[3:6] == ["6", "42", "6"]
    assert answers[:2] == ["iris@3", "stable"] and answers[3] == "setosa=42"  # exact counts
    assert "iris@3" in totals[0]
    assert "every count above gets Laplace noise (ε = 2) at export" in human.stdout
    assert "signs a new checkpoint of the site's audit log" in human.stdout
    assert (home_digest(site), row_counts(site)) == (files, rows)
    assert not out.exists()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-return-path", "the hub's metrics recipient is not known yet"),
        ("lower-k", "--k 3 is below this site's k of 5"),
        ("out-not-empty", "already exists and is not empty"),
    ],
)
def test_a_refused_export_changes_nothing_but_the_audit_log(
    site: SpokeHome, tmp_path: Path, case: str, message: str
) -> None:
    out = tmp_path / "out"
    extra: tuple[str, ...] = ()
    if case == "no-return-path":
        with session_scope(site.engine) as session:
            session.exec(delete(HubReturnRecord))  # type: ignore[call-overload]
    elif case == "lower-k":
        extra = ("--k", "3")
    else:
        out.mkdir()
        (out / "notes.txt").write_text("someone else's file")
    files, rows = home_digest(site), row_counts(site)

    proc = run_airlock(
        "spoke", "export-metrics", "--home", str(site.path), "--out", str(out), *extra
    )
    assert proc.returncode == 3 and proc.stdout == ""
    assert_error_output(proc.stderr, message)
    if case == "no-return-path":
        assert "import a bundle from the hub first" in proc.stderr
    entries = AuditLog(site.engine, "spoke").entries()
    last = entries[-1]
    assert (last.action, last.outcome) == ("spoke.metrics.export", "refused")
    assert message in json.loads(last.details)["message"]
    assert home_digest(site) == files
    assert row_counts(site) == rows | {"audit_log": rows["audit_log"] + 1}
    if case == "out-not-empty":
        assert [p.name for p in out.iterdir()] == ["notes.txt"]
    else:
        assert not out.exists()
