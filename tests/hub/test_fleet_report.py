"""The fleet report: figures per model version across sites and rings, drift, status, CLI.

Figures are inserted as ``airlock hub import-metrics`` stores them
(:class:`HubMetricsImport` with its cells and totals); :func:`add_import` is
shared with the alert tests.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from pathlib import Path

import pytest
from helpers.fleetenv import Fleet
from helpers.fleetfigures import WINDOW, add_import, cell, reference_of, report_of, scaled
from helpers.gatemodels import release
from helpers.spokeenv import run_airlock

from airlock.bundles.errors import UsageError
from airlock.bundles.metrics import LatencySketch
from airlock.hub.cli import render_html
from airlock.hub.context import HubContext
from airlock.hub.fleet import FleetLimits, js_distance

STABLE_MS = [4.0, 5.0, 5.5, 6.0, 30.0]
CANARY_MS = [8.0, 9.0, 120.0]
OTHER_MS = [3.0, 3.5, 4.0, 4.5]


def seed_two_sites(hub: HubContext) -> dict[str, int]:
    """iris@3 at plant-7 (stable + canary, two windows) and plant-9 (stable); iris@2 at plant-9."""
    now = hub.clock.now()
    reference = reference_of(hub, "iris", "3")
    add_import(
        hub,
        "plant-7",
        1,
        now - 2 * WINDOW,
        [
            cell(
                "iris",
                "3",
                "stable",
                requests=300,
                errors=3,
                latencies=STABLE_MS,
                predictions=scaled(reference, 10),
                confidence={"0.9": 250, "0.8": 50},
            ),
            cell(
                "iris",
                "3",
                "canary",
                requests=100,
                errors=7,
                latencies=CANARY_MS,
                predictions={"0": 100},
                confidence={"0.5": 100},
            ),
        ],
    )
    add_import(
        hub,
        "plant-7",
        4,
        now - WINDOW,
        [cell("iris", "3", "stable", requests=200, errors=2, latencies=STABLE_MS)],
        [{"model": "iris", "version": "3", "nodes": 12, "requests": 260, "errors": 10}],
        missing=[2, 3],
        checkpoint_size=55,
    )
    add_import(
        hub,
        "plant-9",
        1,
        now - WINDOW,
        [
            cell(
                "iris",
                "3",
                "stable",
                requests=50,
                errors=0,
                latencies=OTHER_MS,
                predictions={"1": 50},
            ),
            cell("iris", "2", "stable", requests=40, errors=1, latencies=OTHER_MS),
        ],
    )
    return reference


def test_figures_across_sites_and_rings(fleet_hub: HubContext) -> None:
    reference = seed_two_sites(fleet_hub)
    result = report_of(fleet_hub)
    assert [v.ref for v in result.versions] == ["iris@2", "iris@3"]
    iris3 = result.versions[1]
    assert iris3.sites == ["plant-7", "plant-9"]
    assert iris3.rings == ["canary", "stable"]
    # plant-7's second import sent a site-wide total (a suppressed ring included): it counts.
    assert (iris3.requests, iris3.errors) == (300 + 100 + 260 + 50, 3 + 7 + 10 + 0)
    assert iris3.error_rate == pytest.approx(20 / 710)
    merged = LatencySketch.merged(
        LatencySketch.of(ms) for ms in (STABLE_MS, CANARY_MS, STABLE_MS, OTHER_MS)
    )
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        assert iris3.latency[name] == merged.quantile(q)
    fleet_predictions = {k: v for k, v in scaled(reference, 10).items()}
    fleet_predictions["0"] = fleet_predictions.get("0", 0) + 100
    fleet_predictions["1"] = fleet_predictions.get("1", 0) + 50
    assert iris3.predictions == dict(sorted(fleet_predictions.items()))
    assert iris3.drift == pytest.approx(js_distance(fleet_predictions, reference))
    assert 0 < iris3.drift < 1  # type: ignore[operator]
    assert iris3.reference is not None and iris3.reference["source"] == "validation-set"
    assert iris3.confidence == {"0.5": 100, "0.8": 50, "0.9": 250}
    assert iris3.confidence_drift is not None
    groups = {(g.site_id, g.ring): g for g in iris3.groups}
    assert set(groups) == {("plant-7", "canary"), ("plant-7", "stable"), ("plant-9", "stable")}
    assert (groups["plant-7", "stable"].requests, groups["plant-7", "stable"].windows) == (500, 2)
    assert groups["plant-7", "canary"].error_rate == pytest.approx(0.07)
    assert groups["plant-7", "canary"].latency["p50"] == LatencySketch.of(CANARY_MS).quantile(0.5)
    assert [(p["requests"], p["errors"]) for p in iris3.timeline] == [(400, 10), (310, 10)]
    iris2 = result.versions[0]
    assert iris2.status == "insufficient data" and iris2.requests == 40
    sites = {s.site_id: s for s in result.sites}
    assert sites["plant-7"].last_sequence == 4
    assert sites["plant-7"].missing_sequences == [2, 3]
    assert sites["plant-7"].checkpoint_size == 55
    assert sites["plant-9"].last_sequence == 1
    json.dumps(result.to_dict())


def test_status_from_limits(fleet: Fleet, fleet_hub: HubContext) -> None:
    now = fleet_hub.clock.now()
    reference = reference_of(fleet_hub, "iris", "1")
    release(fleet_hub, "plain", "1", fleet.iris.path)  # no validation set: no reference
    add_import(
        fleet_hub,
        "plant-7",
        1,
        now,
        [
            cell("iris", "1", "stable", requests=400, predictions=scaled(reference, 10)),
            cell("iris", "2", "stable", requests=400, predictions={"2": 400}),
            cell("iris", "3", "stable", requests=400, errors=40, predictions={"2": 400}),
            cell("plain", "1", "stable", requests=400, predictions={"2": 400}),
            cell("iris", "3", "candidate", requests=1, predictions={"2": 1}, nodes=5),
        ],
    )
    statuses = {v.ref: v.status for v in report_of(fleet_hub).versions}
    assert statuses == {
        "iris@1": "ok",
        "iris@2": "drift",
        "iris@3": "error-rate",
        "plain@1": "no reference",
    }
    only_iris = report_of(fleet_hub, model="iris")
    assert [v.ref for v in only_iris.versions] == ["iris@1", "iris@2", "iris@3"]
    # Windows that ended before `since` are left out.
    later = report_of(fleet_hub, since=now + dt.timedelta(seconds=1))
    assert later.versions == []


def test_limits_from_config(fleet_hub: HubContext, monkeypatch: pytest.MonkeyPatch) -> None:
    assert FleetLimits.from_config(fleet_hub.config) == FleetLimits(0.2, 0.05, 200, 7)
    monkeypatch.setenv("AIRLOCK_FLEET_DRIFT_LIMIT", "0.3")
    monkeypatch.setenv("AIRLOCK_FLEET_MIN_REQUESTS", "50")
    assert FleetLimits.from_config(fleet_hub.config) == FleetLimits(0.3, 0.05, 50, 7)
    monkeypatch.setenv("AIRLOCK_FLEET_ERROR_RATE_LIMIT", "5%")
    with pytest.raises(UsageError, match="error_rate_limit"):
        FleetLimits.from_config(fleet_hub.config)


def test_html_report(fleet_hub: HubContext, tmp_path: Path) -> None:
    seed_two_sites(fleet_hub)
    out = tmp_path / "fleet.html"
    render_html(report_of(fleet_hub), out, source="<hub & home>")
    page = out.read_text()
    assert page.count("<svg") >= 5
    assert "iris@3" in page and "iris@2" in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "&lt;hub &amp; home&gt;" in page  # autoescaped
    assert re.search(r'id="chart-error-rate"', page) and 'class="limit"' in page
    assert html.escape("plant-7") in page


def test_cli_report(fleet_hub: HubContext, tmp_path: Path) -> None:
    seed_two_sites(fleet_hub)
    home = str(fleet_hub.home.root)
    # No passphrase in the environment: the report needs none.
    proc = run_airlock("hub", "report", "fleet", "--home", home, "--json", passphrase=None)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    versions = {v["ref"]: v for v in data["versions"]}
    assert versions["iris@3"]["requests"] == 710
    assert versions["iris@3"]["reference"]["source"] == "validation-set"
    assert data["limits"]["drift_limit"] == 0.2
    out = tmp_path / "report.html"
    proc = run_airlock(
        "hub",
        "report",
        "fleet",
        "--home",
        home,
        "--model",
        "iris",
        "--html",
        str(out),
        passphrase=None,
    )
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert "<svg" in page and "iris@3" in page and "iris@2" in page
    assert "iris@3" in proc.stdout and "plant-9" in proc.stdout
    proc = run_airlock(
        "hub", "report", "fleet", "--home", home, "--since", "yesterday", passphrase=None
    )
    assert proc.returncode == UsageError.exit_code
    assert proc.stderr.startswith("error: ") and "yesterday" in proc.stderr
