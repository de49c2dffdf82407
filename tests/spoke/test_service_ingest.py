"""Nodes' signed version reports and metrics: verified, stored, never replayed or double-counted."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers.fleetenv import FLEET_TIME, site_signer
from securesystemslib.signer import Signer
from sqlmodel import Session, select

from airlock.bundles.clock import FixedClock, utc_iso
from airlock.bundles.db import session_scope
from airlock.bundles.keys import generate_signer
from airlock.bundles.metrics import LatencySketch
from airlock.bundles.protocol import (
    InstalledModel,
    MetricsReport,
    ModelVersionMetrics,
    NodeIdentity,
    Refusal,
    SignedDocument,
    VersionReport,
    sign_request,
)
from airlock.spoke.nodes import enroll_node
from airlock.spoke.service import create_app
from airlock.spoke.site import MetricWindow, NodeReport, SpokeHome

REPORTS = "/v1/nodes/node-1/reports"
METRICS = "/v1/nodes/node-1/metrics"


class Node:
    """One enrolled node posting to a TestClient app."""

    def __init__(self, home: SpokeHome, client: TestClient, clock: FixedClock) -> None:
        self.home, self.client, self.clock = home, client, clock
        self.signer = generate_signer()
        with session_scope(home.engine) as session:
            enroll_node(
                home,
                session,
                NodeIdentity("node-1", self.signer.public_key),
                {},
                "http://127.0.0.1:8750",
                site_signer(home),
                clock.now(),
            )

    def post(self, path: str, signed: dict[str, Any], doc_signer: Signer | None = None) -> Any:
        doc = SignedDocument.sign(doc_signer or self.signer, signed)
        body = json.dumps(doc.to_dict()).encode()
        headers = sign_request(self.signer, "node-1", "POST", path, body, self.clock.now())
        return self.client.post(path, content=body, headers=headers)

    def report(self, counter: int, *refusals: Refusal, node_id: str = "node-1") -> httpx.Response:
        report = VersionReport(
            node_id=node_id,
            counter=counter,
            time=utc_iso(self.clock.now()),
            installed=(InstalledModel("iris", "1", "A"),),
            refusals=refusals,
        )
        response: httpx.Response = self.post(REPORTS, report.to_dict())
        return response


@pytest.fixture
def node(fleet_spoke: SpokeHome) -> Iterator[Node]:
    clock = FixedClock(FLEET_TIME + dt.timedelta(minutes=5))
    with TestClient(create_app(fleet_spoke, clock)) as client:
        yield Node(fleet_spoke, client, clock)


def refusal_entries(home: SpokeHome) -> list[dict[str, Any]]:
    return [
        json.loads(e.details) | {"node": e.node}
        for e in home.audit.entries()
        if e.action == "spoke.node.refusal"
    ]


def window(
    node: Node, minutes_ago: int, length: int, *models: ModelVersionMetrics
) -> dict[str, Any]:
    end = node.clock.now() - dt.timedelta(minutes=minutes_ago)
    start = end - dt.timedelta(minutes=length)
    return MetricsReport("node-1", utc_iso(start), utc_iso(end), models).to_dict()


def test_report_stored_verbatim_and_counter_must_grow(node: Node) -> None:
    response = node.report(1)
    assert response.status_code == 202 and response.json() == {"accepted": 1}
    with Session(node.home.engine) as session:
        stored = session.get(NodeReport, "node-1")
        assert stored is not None and stored.counter == 1
        doc = SignedDocument.from_dict(stored.report)
        assert VersionReport.from_dict(doc.verify(node.signer.public_key)).counter == 1
    for counter in (1, 0):
        response = node.report(counter)
        assert response.status_code == 409
        assert "replayed or older report" in response.json()["message"]
    assert node.report(5).status_code == 202
    with Session(node.home.engine) as session:
        stored = session.get(NodeReport, "node-1")
        assert stored is not None and stored.counter == 5


def test_new_refusals_are_audited_once(node: Node) -> None:
    when = utc_iso(node.clock.now())
    compat = Refusal("iris", "3", "compatibility: needs 2048 MB of memory", when)
    unsigned = Refusal("iris", "9", "not signed by the hub", when)
    assert node.report(1, compat).status_code == 202
    assert node.report(2, compat).status_code == 202
    assert node.report(3, compat, unsigned).status_code == 202
    entries = refusal_entries(node.home)
    assert [(e["version"], e["reason"], e["node"]) for e in entries] == [
        ("3", compat.reason, "node-1"),
        ("9", unsigned.reason, "node-1"),
    ]


def test_report_must_be_signed_by_the_node_and_name_it(node: Node) -> None:
    report = VersionReport("node-1", 1, utc_iso(node.clock.now())).to_dict()
    response = node.post(REPORTS, report, doc_signer=generate_signer())
    assert response.status_code == 401
    assert node.report(1, node_id="node-2").status_code == 403
    assert node.post(REPORTS, {"type": "metrics"}).status_code == 400
    body = b"not json"
    headers = sign_request(node.signer, "node-1", "POST", REPORTS, body, node.clock.now())
    assert node.client.post(REPORTS, content=body, headers=headers).status_code == 400
    with Session(node.home.engine) as session:
        assert session.get(NodeReport, "node-1") is None


def test_metrics_stored_one_row_per_model_version(node: Node) -> None:
    sketch = LatencySketch.of([2.0, 3.0, 40.0]).to_dict()
    stable = ModelVersionMetrics("iris", "1", "stable", 120, 1, sketch, {"0": 60, "1": 60})
    canary = ModelVersionMetrics("iris", "2", "candidate", 30, 3, sketch, {}, 30, 2)
    response = node.post(METRICS, window(node, 2, 1, stable, canary))
    assert response.status_code == 202 and response.json() == {"accepted": 2}
    with Session(node.home.engine) as session:
        rows = sorted(session.exec(select(MetricWindow)), key=lambda r: r.version)
    assert [(r.node_id, r.version, r.role, r.requests, r.errors) for r in rows] == [
        ("node-1", "1", "stable", 120, 1),
        ("node-1", "2", "candidate", 30, 3),
    ]
    assert rows[0].latency == sketch and rows[0].predictions == {"0": 60, "1": 60}
    assert (rows[1].shadow_compared, rows[1].shadow_disagreed) == (30, 2)
    # the same window again (a retried upload) would count twice: refused
    assert node.post(METRICS, window(node, 2, 1, stable)).status_code == 409
    assert node.post(METRICS, window(node, 0, 2, stable)).status_code == 202


@pytest.mark.parametrize(
    ("minutes_ago", "length", "item", "phrase"),
    [
        (0, 1, ModelVersionMetrics("iris", "1", "stable", -1), "negative count"),
        (0, 1, ModelVersionMetrics("iris", "1", "stable", 1, 2), "more failures"),
        (0, 1, ModelVersionMetrics("iris", "1", "stable", 1, 0, {"3": -1}), "latency"),
        (0, 61, ModelVersionMetrics("iris", "1", "stable", 1), "over an hour"),
        (-6, 1, ModelVersionMetrics("iris", "1", "stable", 1), "in the future"),
        (0, 1, ModelVersionMetrics("iris", "1", "canary", 1), "role"),
    ],
)
def test_bad_metrics_are_refused(
    node: Node, minutes_ago: int, length: int, item: ModelVersionMetrics, phrase: str
) -> None:
    response = node.post(METRICS, window(node, minutes_ago, length, item))
    assert response.status_code == 400
    assert phrase in response.json()["message"]
    with Session(node.home.engine) as session:
        assert session.exec(select(MetricWindow)).first() is None
