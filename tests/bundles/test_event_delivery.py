"""Event delivery: the outbox file, the webhook (retries, order, dedupe, HMAC) and the hooks.

The webhook receiver is a real HTTP server on loopback that records every
request and can be told to fail; time moves with a FixedClock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers.fleetenv import site_signer
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from airlock.bundles.audit import AuditLog, AuditRecord
from airlock.bundles.cli import AirlockGroup, events
from airlock.bundles.clock import FixedClock, parse_utc
from airlock.bundles.config import HomeConfig, write_config
from airlock.bundles.db import session_scope
from airlock.bundles.errors import NotFoundError, SecretError, UsageError
from airlock.bundles.events import (
    CONTENT_TYPE,
    EVENT_TYPES,
    SIGNATURE_HEADER,
    OutboxEvent,
    deliver,
    emit,
    load_settings,
    source_of,
)
from airlock.bundles.schema import create_home_database
from airlock.hub.context import HubContext
from airlock.hub.export import export
from airlock.spoke.cli import periodic_tasks
from airlock.spoke.site import SpokeHome

T0 = dt.datetime(2026, 11, 23, 14, 0, tzinfo=dt.UTC)
HUB_SOURCE = source_of("hub", "hub-1")
SITE_SOURCE = source_of("spoke", "plant-7")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    """A loopback webhook: records requests; fails the next N, or every event of some sources."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    fail_next: int = 0
    fail_sources: set[str] = field(default_factory=set)

    def url(self, path: str = "/hook", userinfo: str = "", query: str = "") -> str:
        auth = f"{userinfo}@" if userinfo else ""
        return f"http://{auth}127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")

    def accepted(self) -> list[dict[str, Any]]:
        return [r.event for r in self.requests if r.headers.get("x-answer") == "204"]

    def answer(self, body: bytes) -> int:
        if self.fail_next > 0:
            self.fail_next -= 1
            return 500
        if json.loads(body).get("source") in self.fail_sources:
            return 503
        return 204


def serve(state: Receiver, tls: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = state.answer(body)
            headers = {k.lower(): v for k, v in self.headers.items()}
            headers["x-answer"] = str(status)
            state.requests.append(Received(self.path, headers, body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    server = serve(state)
    yield state
    server.shutdown()
    server.server_close()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "receiver")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
        .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "receiver.pem", directory / "receiver.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("WEBHOOK_URL", "WEBHOOK_SECRET_ENV", "ALLOW_INSECURE"):
        monkeypatch.delenv(f"AIRLOCK_EVENTS_{name}", raising=False)
    path = tmp_path / "home"
    path.mkdir()
    configure(path)
    return path


@pytest.fixture
def engine(home: Path) -> Iterator[Engine]:
    created = create_home_database(configure(home), AuditRecord)  # at this release's schema
    yield created
    created.dispose()


def configure(home: Path, **events: Any) -> HomeConfig:
    settings: dict[str, Any] = {"database": {"url": "sqlite:///hub.db"}}
    if events:
        settings["events"] = events
    return write_config(home, "hub", settings)


def emit_events(
    engine: Engine, count: int, source: str = HUB_SOURCE, pad: int = 0
) -> list[dict[str, Any]]:
    emitted = []
    with session_scope(engine) as session:
        for number in range(count):
            data = {"number": f"CHG{number:07d}", "state": "Implement", "pad": "x" * pad}
            emitted.append(emit(session, "change.state", source, data["number"], data, T0))
    return emitted


def outbox_lines(home: Path, name: str = "outbox.jsonl") -> list[dict[str, Any]]:
    text = (home / "events" / name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def rows(engine: Engine) -> list[OutboxEvent]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxEvent).order_by(col(OutboxEvent.seq))))


def assert_cloudevent(event: dict[str, Any]) -> None:
    assert event["specversion"] == "1.0"
    assert isinstance(event["id"], str) and event["id"]
    assert event["source"].startswith("/airlock/")
    assert event["type"] in EVENT_TYPES.values()
    assert parse_utc(event["time"]).tzinfo is dt.UTC
    assert event["datacontenttype"] == "application/json"
    assert isinstance(event["data"], dict)


def test_events_reach_the_file_and_the_webhook_once_in_order(
    home: Path, engine: Engine, receiver: Receiver
) -> None:
    emitted = emit_events(engine, 3)
    config = configure(home, webhook_url=receiver.url())

    report = deliver(engine, home, config, T0)

    assert (report.written, report.delivered, report.failed, report.pending) == (3, 3, 0, 0)
    assert outbox_lines(home) == emitted
    assert [r.event for r in receiver.requests] == emitted
    for request in receiver.requests:
        assert request.headers["content-type"] == CONTENT_TYPE
        assert request.path == "/hook"
        assert SIGNATURE_HEADER.lower() not in request.headers
        assert_cloudevent(request.event)
    assert all(r.written_at and r.delivered_at and r.attempts == 1 for r in rows(engine))

    again = deliver(engine, home, config, T0 + dt.timedelta(minutes=1))
    assert (again.written, again.delivered, again.pending) == (0, 0, 0)
    assert len(receiver.requests) == 3 and len(outbox_lines(home)) == 3


def test_without_a_webhook_events_only_go_to_the_file(home: Path, engine: Engine) -> None:
    emitted = emit_events(engine, 2)
    report = deliver(engine, home, configure(home), T0)
    assert (report.written, report.delivered, report.pending, report.webhook) == (2, 0, 0, "")
    assert outbox_lines(home) == emitted
    assert all(r.written_at and not r.delivered_at for r in rows(engine))


def test_failed_posts_are_retried_with_backoff_and_nothing_is_lost(
    home: Path, engine: Engine, receiver: Receiver
) -> None:
    emitted = emit_events(engine, 3)
    config = configure(home, webhook_url=receiver.url())
    clock = FixedClock(T0)
    receiver.fail_next = 2

    first = deliver(engine, home, config, clock.now())
    assert (first.written, first.delivered, first.failed, first.pending) == (3, 0, 1, 3)
    assert first.errors == [f"HTTP 500 from {receiver.url()}"]
    head = rows(engine)[0]
    assert head.attempts == 1 and head.last_error == f"HTTP 500 from {receiver.url()}"
    assert parse_utc(head.next_attempt_at) == T0 + dt.timedelta(seconds=2)
    assert [r.attempts for r in rows(engine)[1:]] == [0, 0], "later events wait their turn"

    clock.advance(dt.timedelta(seconds=1))
    early = deliver(engine, home, config, clock.now())
    assert (early.delivered, early.failed) == (0, 0) and len(receiver.requests) == 1

    clock.advance(dt.timedelta(seconds=1))  # T0 + 2 s: due, fails again; waits 4 s now
    assert deliver(engine, home, config, clock.now()).failed == 1
    assert parse_utc(rows(engine)[0].next_attempt_at) == T0 + dt.timedelta(seconds=6)
    clock.advance(dt.timedelta(seconds=3))
    assert deliver(engine, home, config, clock.now()).failed == 0
    assert len(receiver.requests) == 2

    clock.advance(dt.timedelta(seconds=1))  # T0 + 6 s
    last = deliver(engine, home, config, clock.now())
    assert (last.delivered, last.failed, last.pending) == (3, 0, 0)
    assert receiver.accepted() == emitted
    assert rows(engine)[0].attempts == 3


def test_order_is_kept_per_source_and_one_failing_source_does_not_block_another(
    home: Path, engine: Engine, receiver: Receiver
) -> None:
    a1, b1 = emit_events(engine, 1, HUB_SOURCE) + emit_events(engine, 1, SITE_SOURCE)
    a2, b2 = emit_events(engine, 1, HUB_SOURCE) + emit_events(engine, 1, SITE_SOURCE)
    config = configure(home, webhook_url=receiver.url())
    receiver.fail_sources = {HUB_SOURCE}

    report = deliver(engine, home, config, T0)
    assert (report.delivered, report.failed) == (2, 1)
    assert receiver.accepted() == [b1, b2]
    assert [r.event["id"] for r in receiver.requests if r.event["source"] == HUB_SOURCE] == [
        a1["id"]
    ], "a2 is not sent while a1 is undelivered"

    receiver.fail_sources = set()
    healed = deliver(engine, home, config, T0 + dt.timedelta(seconds=2))
    assert (healed.delivered, healed.pending) == (2, 0)
    assert receiver.accepted() == [b1, b2, a1, a2]


def test_a_crash_before_the_marks_only_duplicates_and_the_receiver_can_dedupe(
    home: Path, engine: Engine, receiver: Receiver
) -> None:
    emitted = emit_events(engine, 3)
    config = configure(home, webhook_url=receiver.url())
    deliver(engine, home, config, T0)
    # The process died after the file write and the POSTs, before the transactions that
    # mark them committed: the rows are as they were before delivery.
    with session_scope(engine) as session:
        session.execute(update(OutboxEvent).values(written_at="", delivered_at="", attempts=0))

    report = deliver(engine, home, config, T0 + dt.timedelta(seconds=5))

    assert (report.written, report.delivered, report.pending) == (3, 3, 0)
    assert outbox_lines(home) == emitted + emitted
    received = receiver.accepted()
    assert received == emitted + emitted
    deduped = {(e["source"], e["id"]): e for e in received}
    assert list(deduped.values()) == emitted
    assert deliver(engine, home, config, T0 + dt.timedelta(seconds=9)).delivered == 0


def test_posts_are_signed_with_hmac_and_a_missing_secret_stops_everything(
    home: Path, engine: Engine, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    emitted = emit_events(engine, 2)
    config = configure(home, webhook_url=receiver.url(), webhook_secret_env="TEST_HOOK_KEY")
    with pytest.raises(SecretError, match="TEST_HOOK_KEY"):
        deliver(engine, home, config, T0)
    assert not (home / "events" / "outbox.jsonl").exists() and receiver.requests == []
    assert not any(r.written_at for r in rows(engine))

    monkeypatch.setenv("TEST_HOOK_KEY", "receiver-shared-secret")
    assert deliver(engine, home, config, T0).delivered == 2
    for request, event in zip(receiver.requests, emitted, strict=True):
        expected = hmac.new(b"receiver-shared-secret", request.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(request.headers["x-airlock-signature"], f"sha256={expected}")
        assert request.event == event
    assert not any("receiver-shared-secret" in json.dumps(r.body) for r in rows(engine))


def test_the_outbox_file_rotates_and_keeps_the_configured_number(
    home: Path, engine: Engine
) -> None:
    emitted = emit_events(engine, 30, pad=300)
    config = configure(home, max_file_bytes=1024, keep_files=2)

    assert deliver(engine, home, config, T0).written == 30

    files = sorted(p.name for p in (home / "events").iterdir() if p.name != ".lock")
    assert files == ["outbox.jsonl", "outbox.jsonl.1", "outbox.jsonl.2"]
    for name in files:
        assert 0 < (home / "events" / name).stat().st_size <= 1024
    kept = (
        outbox_lines(home, "outbox.jsonl.2")
        + outbox_lines(home, "outbox.jsonl.1")
        + outbox_lines(home)
    )
    assert kept == emitted[-len(kept) :], "the newest events, in order, nothing torn"


def test_only_https_or_loopback_http_webhooks_are_accepted(
    home: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    emit_events(engine, 1)
    for url in ("http://hooks.example.com/x", "ftp://127.0.0.1/x", "file:///tmp/x", "https://"):
        with pytest.raises(UsageError):
            deliver(engine, home, configure(home, webhook_url=url), T0)
    monkeypatch.setenv("AIRLOCK_EVENTS_WEBHOOK_URL", "http://10.1.2.3/hook")
    with pytest.raises(UsageError, match="plain http"):
        load_settings(configure(home))
    assert not (home / "events").exists() and not rows(engine)[0].written_at

    monkeypatch.delenv("AIRLOCK_EVENTS_WEBHOOK_URL")
    for url in ("https://hooks.example.com/x", "http://localhost:8080/x", "http://[::1]/x"):
        assert load_settings(configure(home, webhook_url=url)).webhook is not None
    insecure = configure(home, webhook_url="http://10.1.2.3/hook", allow_insecure=True)
    assert load_settings(insecure).webhook is not None


def test_https_webhook_with_the_receivers_ca(home: Path, engine: Engine, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    state = Receiver()
    server = serve(state, tls)
    try:
        emitted = emit_events(engine, 1)
        url = f"https://127.0.0.1:{state.port}/hook"
        untrusted = deliver(engine, home, configure(home, webhook_url=url), T0)
        assert untrusted.failed == 1 and "ConnectError" in untrusted.errors[0]
        assert state.requests == []
        with pytest.raises(NotFoundError):
            deliver(engine, home, configure(home, webhook_url=url, ca_file="no-such.pem"), T0)

        trusted = configure(home, webhook_url=url, ca_file=str(cert))
        report = deliver(engine, home, trusted, T0 + dt.timedelta(minutes=1))
        assert (report.delivered, report.pending) == (1, 0)
        assert state.accepted() == emitted
    finally:
        server.shutdown()
        server.server_close()


def cli(*args: str) -> Any:
    root = AirlockGroup(name="airlock", commands={"events": events})
    return CliRunner().invoke(root, ["events", *args])


def test_credentials_in_the_url_never_reach_errors_or_the_audit_log(
    home: Path, engine: Engine, receiver: Receiver
) -> None:
    emit_events(engine, 2)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    secrets = ("hook-user", "pa55word-xyz", "token=t0ken-abc")
    for url in (
        receiver.url(userinfo="hook-user:pa55word-xyz", query="token=t0ken-abc"),
        f"http://hook-user:pa55word-xyz@127.0.0.1:{dead_port}/hook?token=t0ken-abc",
    ):
        receiver.fail_next = 1
        configure(home, webhook_url=url)
        with session_scope(engine) as session:
            session.execute(update(OutboxEvent).values(next_attempt_at=""))
        result = cli("deliver", "--home", str(home), "--json")
        assert result.exit_code == 5, result.output
        shown = result.output + result.stderr + json.dumps([r.last_error for r in rows(engine)])
        assert rows(engine)[0].last_error
        assert not any(s in shown for s in secrets), shown
    assert "ConnectError" in rows(engine)[0].last_error
    assert receiver.requests[0].headers["authorization"].startswith("Basic ")

    entries = AuditLog(engine, "hub").entries()
    assert [e.action for e in entries] == ["events.deliver", "events.deliver"]
    assert all(e.outcome == "failure" for e in entries)
    dumped = json.dumps([e.entry() for e in entries])
    assert not any(s in dumped for s in secrets), dumped


def test_cli_delivers_lists_pending_and_refuses_bad_settings(
    home: Path, engine: Engine, receiver: Receiver
) -> None:
    emitted = emit_events(engine, 2)
    configure(home, webhook_url="http://hooks.example.com/x")
    refused = cli("deliver", "--home", str(home))
    assert refused.exit_code == 3 and "plain http" in refused.stderr
    assert AuditLog(engine, "hub").entries()[-1].outcome == "refused"

    configure(home, webhook_url=receiver.url())
    pending = json.loads(cli("list", "--home", str(home), "--pending", "--json").output)
    assert [(p["id"], p["status"]) for p in pending] == [(e["id"], "pending") for e in emitted]

    delivered = cli("deliver", "--home", str(home), "--json")
    assert delivered.exit_code == 0, delivered.output
    assert json.loads(delivered.output) | {"errors": []} == {
        "written": 2,
        "delivered": 2,
        "failed": 0,
        "pending": 0,
        "webhook": receiver.url(),
        "errors": [],
        "busy": False,
    }
    assert json.loads(cli("list", "--home", str(home), "--pending", "--json").output) == []
    listed = json.loads(cli("list", "--home", str(home), "--json").output)
    assert [(item["event"], item["status"]) for item in listed] == [
        (e, "delivered") for e in emitted
    ]
    table = cli("list", "--home", str(home))
    assert table.exit_code == 0 and "CHG0000001" in table.output
    assert AuditLog(engine, "hub").entries()[-1].outcome == "success"


def test_a_hub_operation_delivers_its_events_and_never_fails_because_of_them(
    hub: HubContext, receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRLOCK_EVENTS_WEBHOOK_URL", f"http://127.0.0.1:{receiver.port}/hub")
    source = source_of("hub", hub.audit.host)
    receiver.fail_sources = {source}
    with session_scope(hub.engine) as session:  # an event an earlier delivery missed
        missed = emit(session, "change.approved", source, "CHG0000042", {"n": 1}, T0)

    first = export(hub, "plant-7", tmp_path / "bundle-1")  # the webhook refuses: export stands

    assert (tmp_path / "bundle-1" / "envelope.json").is_file()
    assert [r.event for r in receiver.requests] == [missed], "in order: the rest wait"
    written = outbox_lines(hub.home.root)
    assert written[0] == missed
    exported = [e for e in written if e["type"] == EVENT_TYPES["bundle.exported"]]
    assert [e["subject"] for e in exported] == [first.bundle_id]
    failures = [e for e in hub.audit.entries() if e.action == "events.deliver"]
    assert [e.outcome for e in failures] == ["failure"]

    receiver.fail_sources = set()
    hub.clock.advance(dt.timedelta(minutes=1))  # type: ignore[attr-defined]
    second = export(hub, "plant-7", tmp_path / "bundle-2")

    delivered = receiver.accepted()
    all_events = [row.body for row in rows(hub.engine)]
    assert delivered == all_events and all(r.delivered_at for r in rows(hub.engine))
    assert delivered[0] == missed
    assert [e["subject"] for e in delivered if e["type"] == EVENT_TYPES["bundle.exported"]] == [
        first.bundle_id,
        second.bundle_id,
    ]
    for event in delivered:
        assert_cloudevent(event)
    assert outbox_lines(hub.home.root) == all_events


def test_the_spoke_service_delivers_in_the_background(
    spoke: SpokeHome, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRLOCK_EVENTS_WEBHOOK_URL", receiver.url("/site"))
    with session_scope(spoke.engine) as session:
        event = emit(session, "rollout.paused", SITE_SOURCE, "iris@2", {"ring": "canary"}, T0)
    tasks = periodic_tasks(spoke, site_signer(spoke), FixedClock(T0))
    [deliver_events] = [t for t in tasks if t.__name__ == "deliver_events"]

    deliver_events()

    assert receiver.accepted() == [event]
    assert outbox_lines(spoke.path) == [event]
