"""The spoke's Prometheus endpoint, health check and background tasks."""

from __future__ import annotations

import datetime as dt
import json
import threading

from fastapi.testclient import TestClient
from helpers.fleetenv import FLEET_TIME, site_signer
from prometheus_client.parser import text_string_to_metric_families

from airlock.bundles.clock import FixedClock, utc_iso
from airlock.bundles.db import session_scope
from airlock.bundles.errors import TrustError
from airlock.bundles.keys import generate_signer
from airlock.bundles.protocol import (
    MetricsReport,
    ModelVersionMetrics,
    NodeIdentity,
    SignedDocument,
)
from airlock.bundles.protocol import sign_request as sign
from airlock.spoke.nodes import enroll_node
from airlock.spoke.service import create_app
from airlock.spoke.site import Rollout, SpokeHome

LOOPBACK = ("127.0.0.1", 40000)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_expose_the_documented_series_without_node_data(fleet_spoke: SpokeHome) -> None:
    clock = FixedClock(FLEET_TIME + dt.timedelta(minutes=5))
    signer = generate_signer()
    with session_scope(fleet_spoke.engine) as session:
        enroll_node(
            fleet_spoke,
            session,
            NodeIdentity("node-secret-name", signer.public_key),
            {},
            "http://127.0.0.1:8750",
            site_signer(fleet_spoke),
            clock.now(),
        )
        session.add(Rollout(id="iris-2", model="iris", version="2", state="ring"))
    app = create_app(fleet_spoke, clock)
    with TestClient(app, client=LOOPBACK) as client:
        path = "/v1/image/1.root.json"
        headers = sign(signer, "node-secret-name", "GET", path, b"", clock.now())
        assert client.get(path, headers=headers).status_code == 200
        assert client.get(path).status_code == 401  # unsigned
        metrics_path = "/v1/nodes/node-secret-name/metrics"
        end = clock.now()
        report = MetricsReport(
            "node-secret-name",
            utc_iso(end - dt.timedelta(minutes=1)),
            utc_iso(end),
            (ModelVersionMetrics("iris", "2", "candidate", 40, 2),),
        )
        body = json.dumps(SignedDocument.sign(signer, report.to_dict()).to_dict()).encode()
        headers = sign(signer, "node-secret-name", "POST", metrics_path, body, clock.now())
        assert client.post(metrics_path, content=body, headers=headers).status_code == 202
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "node-secret-name" not in response.text
    found = samples(response.text)
    image = "/v1/image/{name}"
    requests = "airlock_spoke_http_requests_total"
    assert found[(requests, (("method", "GET"), ("route", image), ("status", "200")))] == 1
    assert found[(requests, (("method", "GET"), ("route", image), ("status", "401")))] == 1
    latency = "airlock_spoke_http_request_duration_seconds_count"
    assert found[(latency, (("route", image), ("status", "200")))] == 1
    assert found[("airlock_spoke_nodes_enrolled", ())] == 1
    assert found[("airlock_spoke_refused_requests_total", (("reason", "unsigned"),))] == 1
    model = (("model", "iris"), ("role", "candidate"), ("version", "2"))
    assert found[("airlock_model_requests_total", model)] == 40
    assert found[("airlock_model_errors_total", model)] == 2
    assert found[("airlock_spoke_metric_windows_received_total", ())] == 1
    assert found[("airlock_spoke_reports_received_total", ())] == 0
    state = (("model", "iris"), ("rollout", "iris-2"), ("state", "ring"), ("version", "2"))
    assert found[("airlock_rollout_state", state)] == 1


def test_metrics_answer_loopback_clients_only(fleet_spoke: SpokeHome) -> None:
    app = create_app(fleet_spoke, FixedClock(FLEET_TIME))
    with TestClient(app, client=("192.0.2.7", 40000)) as client:
        response = client.get("/metrics")
        assert response.status_code == 403
        assert "loopback" in response.json()["message"]
        assert client.get("/healthz").json() == {"status": "ok"}


def test_periodic_tasks_run_and_survive_failures(fleet_spoke: SpokeHome) -> None:
    ran = threading.Event()
    calls: list[str] = []

    def failing() -> None:
        calls.append("failing")
        raise TrustError("boom")

    def counting() -> None:
        calls.append("counting")
        if calls.count("counting") >= 2:
            ran.set()

    app = create_app(fleet_spoke, FixedClock(FLEET_TIME), [failing, counting], 0.01)
    with TestClient(app) as client:
        assert ran.wait(timeout=30), "the periodic tasks did not run twice"
        assert client.get("/healthz").status_code == 200
    alive = [t for t in threading.enumerate() if t.name == "airlock-spoke-periodic"]
    assert alive == [], "the background thread stops with the app"
    assert calls[:4] == ["failing", "counting", "failing", "counting"]
