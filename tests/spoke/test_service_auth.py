"""The spoke service serves enrolled nodes only: every /v1 request is signed, fresh and theirs."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers.fleetenv import FLEET_TIME, site_signer
from securesystemslib.signer import Signer
from sqlmodel import Session

from airlock.bundles.audit import AuditRecord
from airlock.bundles.clock import FixedClock
from airlock.bundles.db import session_scope
from airlock.bundles.keys import generate_signer
from airlock.bundles.protocol import NodeIdentity, sign_request
from airlock.bundles.tuf import IMAGE
from airlock.spoke import director as site_director
from airlock.spoke.nodes import enroll_node, remove_node
from airlock.spoke.service import create_app
from airlock.spoke.site import RevokedVersion, SpokeHome, StagedModel, TrustedMetadataFile

ROOT_PATH = "/v1/image/1.root.json"


@dataclass
class Api:
    """A spoke app in a TestClient, one enrolled node, and the shared clock."""

    home: SpokeHome
    client: TestClient
    clock: FixedClock
    node_id: str
    signer: Signer

    def send(
        self,
        path: str,
        method: str = "GET",
        body: bytes = b"",
        node_id: str | None = None,
        signer: Signer | None = None,
        signed_path: str | None = None,
        when: dt.datetime | None = None,
    ) -> httpx.Response:
        headers = sign_request(
            signer or self.signer,
            node_id or self.node_id,
            method,
            signed_path or path,
            body,
            when or self.clock.now(),
        )
        return self.client.request(method, path, content=body or None, headers=headers)


def enroll(home: SpokeHome, node_id: str, when: dt.datetime) -> Signer:
    signer = generate_signer()
    with session_scope(home.engine) as session:
        enroll_node(
            home,
            session,
            NodeIdentity(node_id, signer.public_key),
            {},
            "http://127.0.0.1:8750",
            site_signer(home),
            when,
        )
    return signer


@pytest.fixture
def api(fleet_spoke: SpokeHome) -> Iterator[Api]:
    clock = FixedClock(FLEET_TIME + dt.timedelta(minutes=5))
    signer = enroll(fleet_spoke, "node-1", clock.now())
    with TestClient(create_app(fleet_spoke, clock)) as client:
        yield Api(fleet_spoke, client, clock, "node-1", signer)


def refusals(home: SpokeHome) -> list[AuditRecord]:
    return [e for e in home.audit.entries() if e.action == "spoke.node.request"]


def trusted_image(home: SpokeHome, name: str) -> bytes:
    with Session(home.engine) as session:
        row = session.get(TrustedMetadataFile, (IMAGE, name))
        assert row is not None
        return bytes(row.data)


def assert_error(response: httpx.Response, status: int, phrase: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message", "hint"}
    assert phrase in body["message"]


def test_enrolled_node_reads_the_image_mirror(api: Api) -> None:
    response = api.send(ROOT_PATH)
    assert response.status_code == 200
    assert response.content == trusted_image(api.home, "root_history/1.root.json")
    assert api.send("/v1/image/timestamp.json").content == trusted_image(api.home, "timestamp.json")
    assert_error(api.send("/v1/image/99.root.json"), 404, "no Image metadata")
    assert refusals(api.home) == []


def test_enrolled_node_downloads_staged_targets_but_not_revoked_ones(api: Api) -> None:
    with Session(api.home.engine) as session:
        staged = session.get(StagedModel, ("iris", "2"))
        assert staged is not None
        entry = json.loads(staged.files)[0]
    path = f"/v1/image/targets/iris/2/{entry['sha256']}.{entry['filename']}"
    response = api.send(path)
    assert response.status_code == 200
    assert response.content == (api.home.blob_dir / entry["sha256"]).read_bytes()
    with session_scope(api.home.engine) as session:
        session.add(RevokedVersion(model="iris", version="2", reason="bad"))
    assert_error(api.send(path), 404, "no staged model file")


def test_unenrolled_node_gets_nothing_and_is_audited_once_a_minute(api: Api) -> None:
    stranger = generate_signer()
    for _ in range(3):
        response = api.send(ROOT_PATH, node_id="node-x", signer=stranger)
        assert_error(response, 401, "'node-x' is not enrolled")
        assert b"signed" not in response.content
    entries = refusals(api.home)
    assert len(entries) == 1
    assert entries[0].outcome == "refused" and entries[0].node == "node-x"
    assert json.loads(entries[0].details) == {"reason": "unenrolled", "path": ROOT_PATH}
    api.clock.advance(dt.timedelta(seconds=61))
    assert api.send(ROOT_PATH, node_id="node-x", signer=stranger).status_code == 401
    assert len(refusals(api.home)) == 2
    # another reason is another entry; the enrolled node is unaffected
    assert api.send(ROOT_PATH, node_id="node-1", signer=stranger).status_code == 401
    assert [json.loads(e.details)["reason"] for e in refusals(api.home)][-1] == "bad-signature"
    assert api.send(ROOT_PATH).status_code == 200


def test_removed_node_is_refused(api: Api) -> None:
    assert api.send(ROOT_PATH).status_code == 200
    with session_scope(api.home.engine) as session:
        remove_node(api.home, session, "node-1", "stolen", api.clock.now())
    assert_error(api.send(ROOT_PATH), 401, "not enrolled")
    assert json.loads(refusals(api.home)[-1].details)["reason"] == "removed"


def test_unsigned_and_tampered_requests_are_refused(api: Api) -> None:
    assert_error(api.client.get(ROOT_PATH), 401, "does not name a node")
    response = api.client.get(ROOT_PATH, headers={"X-Airlock-Node": "node-1"})
    assert_error(response, 401, "no valid node signature headers")
    # signed for another path: the signature does not cover what is asked
    response = api.send(ROOT_PATH, signed_path="/v1/image/timestamp.json")
    assert_error(response, 401, "does not verify")
    reasons = [json.loads(e.details)["reason"] for e in refusals(api.home)]
    assert reasons == ["unsigned", "bad-signature"]  # the second bad signature is throttled


def test_replayed_nonce_is_refused(api: Api) -> None:
    headers = sign_request(api.signer, "node-1", "GET", ROOT_PATH, b"", api.clock.now())
    assert api.client.get(ROOT_PATH, headers=headers).status_code == 200
    assert_error(api.client.get(ROOT_PATH, headers=headers), 401, "replayed")
    assert json.loads(refusals(api.home)[-1].details)["reason"] == "replayed-nonce"


def test_stale_or_future_date_is_refused(api: Api) -> None:
    old = api.clock.now() - dt.timedelta(minutes=6)
    assert_error(api.send(ROOT_PATH, when=old), 401, "too far from the spoke's clock")
    future = api.clock.now() + dt.timedelta(minutes=6)
    assert_error(api.send(ROOT_PATH, when=future), 401, "too far from the spoke's clock")
    assert json.loads(refusals(api.home)[-1].details)["reason"] == "stale-date"
    assert api.send(ROOT_PATH, when=api.clock.now() - dt.timedelta(minutes=4)).status_code == 200


def test_node_cannot_read_another_nodes_director_files(api: Api) -> None:
    enroll(api.home, "node-2", api.clock.now())
    with Session(api.home.engine) as session:
        site_root = site_director.site_root(session, 1)
    own = api.send("/v1/nodes/node-1/director/1.root.json")
    assert own.status_code == 200 and own.content == site_root
    assert_error(api.send("/v1/nodes/node-1/director/timestamp.json"), 404, "site-director")
    response = api.send("/v1/nodes/node-2/director/1.root.json")
    assert_error(response, 403, "another node's files")
    assert json.loads(refusals(api.home)[-1].details) == {
        "reason": "wrong-node",
        "path": "/v1/nodes/node-2/director/1.root.json",
    }
    assert api.send("/v1/nodes/node-2/reports", method="POST", body=b"{}").status_code == 403


def test_unknown_api_paths_need_a_signature_too(api: Api) -> None:
    assert api.client.get("/v1/anything").status_code == 401
    assert_error(api.send("/v1/anything"), 404, "no such API path")
    assert api.send(ROOT_PATH, method="POST").status_code == 404
    assert api.client.get("/healthz").json() == {"status": "ok"}


def test_oversized_body_is_refused(api: Api) -> None:
    body = b"x" * (1024 * 1024 + 1)
    response = api.send("/v1/nodes/node-1/reports", method="POST", body=body)
    assert_error(response, 413, "over")
