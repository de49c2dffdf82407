"""The spoke service on a real uvicorn server (loopback, plain and TLS), driven by the node client.

Nodes fetch through ``tuf.ngclient`` with :class:`SignedFetcher`: every
metadata and target download is a signed request, verified end to end from
the roots in the node's bootstrap.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers.fleetenv import site_signer
from helpers.serving import serving
from helpers.spokeenv import AIRLOCK, SITE_PASSPHRASE, Invoke
from securesystemslib.signer import Signer
from sqlmodel import Session
from tuf.ngclient import Updater

from airlock.bundles.clock import SystemClock, utc_iso
from airlock.bundles.db import session_scope
from airlock.bundles.errors import (
    ConflictError,
    MediaError,
    NotFoundError,
    SignatureError,
    UsageError,
    WrongSiteError,
)
from airlock.bundles.keys import generate_signer
from airlock.bundles.protocol import (
    AgentBootstrap,
    NodeIdentity,
    NodeModel,
    SignedDocument,
    VersionReport,
    director_base,
)
from airlock.node import NodeClient, SignedFetcher
from airlock.spoke import director as site_director
from airlock.spoke.nodes import enroll_node
from airlock.spoke.service import create_app
from airlock.spoke.site import PASSPHRASE_ENV, NodeDesired, SpokeHome


def enroll(
    home: SpokeHome, node_id: str, url: str = "http://127.0.0.1"
) -> tuple[Signer, AgentBootstrap]:
    signer = generate_signer()
    with session_scope(home.engine) as session:
        bootstrap = enroll_node(
            home,
            session,
            NodeIdentity(node_id, signer.public_key),
            {},
            url,
            site_signer(home),
            SystemClock().now(),
        )
    return signer, bootstrap


def self_signed(directory: Path) -> tuple[Path, Path, str]:
    """A self-signed certificate for 127.0.0.1: (cert file, key file, cert PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "airlock test spoke")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    cert_file, key_file = directory / "spoke.crt", directory / "spoke.key"
    cert_file.write_text(pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, pem


def test_node_verifies_image_and_site_director_metadata_over_http(
    fleet_spoke: SpokeHome, tmp_path: Path
) -> None:
    signer, bootstrap = enroll(fleet_spoke, "node-1")
    now = SystemClock().now()
    with session_scope(fleet_spoke.engine) as session:
        session.add(NodeDesired(node_id="node-1", models=[NodeModel("iris", "1").to_dict()]))
        site_director.publish_pending(fleet_spoke, session, site_signer(fleet_spoke), now)
    app = create_app(fleet_spoke, SystemClock())
    with serving(app) as base, NodeClient(base, "node-1", signer, SystemClock()) as client:
        assert client.get("/v1/image/1.root.json") == bootstrap.image_root.encode()
        fetcher = SignedFetcher(client)
        director = Updater(
            str(tmp_path / "director"),
            f"{base}{director_base('node-1')}/",
            fetcher=fetcher,
            bootstrap=bootstrap.site_root.encode(),
        )
        director.refresh()
        assigned = director._trusted_set.targets.targets  # what the node was told
        (path,) = [p for p in assigned if p.endswith(".onnx")] or list(assigned)[:1]
        image = Updater(
            str(tmp_path / "image"),
            f"{base}/v1/image/",
            str(tmp_path / "downloads"),
            f"{base}/v1/image/targets/",
            fetcher=fetcher,
            bootstrap=bootstrap.image_root.encode(),
        )
        image.refresh()
        info = image.get_targetinfo(path)
        assert info is not None and info.hashes == assigned[path].hashes
        downloaded = Path(image.download_target(info, str(tmp_path / "model.bin")))
        assert hashlib.sha256(downloaded.read_bytes()).hexdigest() == info.hashes["sha256"]
        # the report goes through the same client
        report = VersionReport("node-1", 1, utc_iso(SystemClock().now()))
        answer = client.post_document(
            "/v1/nodes/node-1/reports", SignedDocument.sign(signer, report.to_dict())
        )
        assert answer == {"accepted": 1}
        with pytest.raises(ConflictError, match="replayed or older report"):
            client.post_document(
                "/v1/nodes/node-1/reports", SignedDocument.sign(signer, report.to_dict())
            )


def test_node_client_errors_carry_the_spokes_message(fleet_spoke: SpokeHome) -> None:
    signer, _ = enroll(fleet_spoke, "node-1")
    enroll(fleet_spoke, "node-2")
    app = create_app(fleet_spoke, SystemClock())
    with serving(app) as base:
        with NodeClient(base, "node-1", signer, SystemClock()) as client:
            with pytest.raises(NotFoundError, match="no Image metadata"):
                client.get("/v1/image/7.root.json")
            with pytest.raises(WrongSiteError, match="another node's files"):
                client.get("/v1/nodes/node-2/director/1.root.json")
        with NodeClient(base, "node-9", generate_signer(), SystemClock()) as stranger:
            with pytest.raises(SignatureError, match="not enrolled") as refused:
                stranger.get("/v1/image/1.root.json")
            assert "airlock spoke node enroll" in refused.value.hint
    with (
        NodeClient(base, "node-1", signer, SystemClock(), timeout=2) as client,
        pytest.raises(MediaError, match="spoke unreachable"),
    ):
        client.get("/v1/image/1.root.json")


def test_tls_with_the_bootstrap_certificate(fleet_spoke: SpokeHome, tmp_path: Path) -> None:
    cert, key, pem = self_signed(tmp_path)
    signer, _ = enroll(fleet_spoke, "node-1")
    with serving(create_app(fleet_spoke, SystemClock()), (cert, key)) as base:
        assert base.startswith("https://")
        with NodeClient(base, "node-1", signer, SystemClock(), ca_pem=pem) as client:
            assert b'"_type": "root"' in client.get("/v1/image/1.root.json")
        with (
            NodeClient(base, "node-1", signer, SystemClock()) as untrusting,
            pytest.raises(MediaError, match="spoke unreachable"),
        ):
            untrusting.get("/v1/image/1.root.json")


def test_serve_refuses_a_network_address_without_tls(
    fleet_spoke: SpokeHome, airlock: Invoke
) -> None:
    home = str(fleet_spoke.path)
    result = airlock("spoke", "serve", "--home", home, "--host", "0.0.0.0")  # noqa: S104
    assert result.exit_code == UsageError.exit_code
    assert "refusing to serve on 0.0.0.0 without TLS" in result.stderr
    assert "--tls-cert" in result.stderr
    result = airlock("spoke", "serve", "--home", home, "--tls-cert", f"{home}/airlock.toml")
    assert result.exit_code == UsageError.exit_code and "go together" in result.stderr
    entries = [e for e in fleet_spoke.audit.entries() if e.action == "spoke.serve.start"]
    assert [e.outcome for e in entries] == ["refused", "refused"]


def test_serve_command_runs_the_api(fleet_spoke: SpokeHome) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {PASSPHRASE_ENV: SITE_PASSPHRASE, "AIRLOCK_PRINCIPAL": "site-admin", "PATH": "/usr/bin"}
    proc = subprocess.Popen(
        [str(AIRLOCK), "spoke", "serve", "--home", str(fleet_spoke.path), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the service did not start"
                time.sleep(0.1)
        assert response.json() == {"status": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/v1/image/1.root.json").status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    start = [e for e in fleet_spoke.audit.entries() if e.action == "spoke.serve.start"]
    assert [(e.outcome, e.principal) for e in start] == [("success", "site-admin")]
    assert json.loads(start[0].details) == {"host": "127.0.0.1", "port": port, "tls": False}
    with Session(fleet_spoke.engine) as session:
        assert site_director.site_root(session) is not None  # the periodic refresh made it
