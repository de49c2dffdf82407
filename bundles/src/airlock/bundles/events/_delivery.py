"""Delivering the event outbox: a rotated JSON-lines file, then a webhook, at least once.

Hub and spoke write CloudEvents into the ``event_outbox`` table in the same
transaction as the change they describe (:mod:`airlock.bundles.events._outbox`).
:func:`deliver` drains that table in ``seq`` order, in two steps:

1. **File.** Every event not yet written is appended to
   ``HOME/events/outbox.jsonl`` (one CloudEvent JSON object per line), the
   file is fsynced, and only then are the rows marked ``written_at`` (one
   transaction per batch). A crash between the write and the mark writes the
   lines again next time: at least once, never lost. The file rotates at
   ``[events] max_file_bytes`` (default 10 MiB), keeping ``[events]
   keep_files`` (default 5) older files as ``outbox.jsonl.1`` (newest) …
2. **Webhook**, when ``[events] webhook_url`` (env
   ``AIRLOCK_EVENTS_WEBHOOK_URL``) is set. Every written, undelivered event is
   POSTed in structured mode (``Content-Type: application/cloudevents+json``).
   A 2xx answer marks it delivered; anything else (another status, a
   transport error) counts an attempt and schedules a retry with exponential
   backoff. Events of one ``source`` go out in order: a failed or waiting
   event holds back the later events of its source. With ``[events]
   webhook_secret_env = "NAME"`` each POST carries ``X-Airlock-Signature:
   sha256=<hex HMAC-SHA256 of the body, keyed with $NAME>``.

Only ``http(s)`` URLs are accepted; plain ``http`` only to a loopback host
unless ``[events] allow_insecure = true``. Errors kept in ``last_error``,
reports and the audit log name the URL without user info, query or fragment,
and never carry the signing secret. Receivers deduplicate by ``source`` +
``id``. The integrator's guide is ``docs/integrator.md``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import logging
import os
import ssl
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, or_
from sqlmodel import Session, col, select

from airlock.bundles.audit._log import AuditLog
from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.config import HomeConfig
from airlock.bundles.db._engine import session_scope
from airlock.bundles.errors import (
    AirlockError,
    AuditWriteError,
    NotFoundError,
    SecretError,
    UsageError,
)
from airlock.bundles.events._outbox import OutboxEvent

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

EVENTS_DIR = "events"
OUTBOX_FILE = "outbox.jsonl"
LOCK_FILE = ".lock"
CONTENT_TYPE = "application/cloudevents+json"
SIGNATURE_HEADER = "X-Airlock-Signature"
DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024
DEFAULT_KEEP_FILES = 5
DEFAULT_TIMEOUT_SECONDS = 5
DEFAULT_RETRY_BASE_SECONDS = 2
DEFAULT_RETRY_MAX_SECONDS = 3600
BATCH_SIZE = 500
POSTS_PER_CALL = 200
"""At most this many POSTs per :func:`deliver` call (the spoke's background loop stays lively)."""
DELIVER_ACTION = "events.deliver"


@dataclass(frozen=True)
class Webhook:
    """A validated webhook destination (``url`` may hold credentials: never print it)."""

    url: str = field(repr=False)
    redacted: str = ""
    secret: bytes | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    ca_file: str = ""
    retry_base: int = DEFAULT_RETRY_BASE_SECONDS
    retry_max: int = DEFAULT_RETRY_MAX_SECONDS

    def scrub(self, text: str) -> str:
        """``text`` with the URL's credentials, query and the signing secret taken out."""
        parts = urllib.parse.urlsplit(self.url)
        for secret in (self.url, parts.netloc, parts.query, parts.password, parts.username):
            if secret and len(secret) >= 3:
                text = text.replace(secret, "***")
        if self.secret:
            text = text.replace(self.secret.decode("utf-8", "replace"), "***")
        return text

    def backoff(self, attempts: int) -> dt.timedelta:
        """The wait after the ``attempts``-th failed attempt: base × 2^(n−1), capped."""
        exponent = min(max(attempts - 1, 0), 30)
        return dt.timedelta(seconds=min(self.retry_base * 2**exponent, self.retry_max))


@dataclass(frozen=True)
class DeliverySettings:
    """The ``[events]`` section of a home's configuration, validated."""

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    keep_files: int = DEFAULT_KEEP_FILES
    webhook: Webhook | None = None


@dataclass
class DeliveryReport:
    """What one :func:`deliver` call did (counts are of this call; ``pending`` is what is left)."""

    written: int = 0
    delivered: int = 0
    failed: int = 0
    pending: int = 0
    webhook: str = ""
    """The webhook URL without credentials or query ("" when none is configured)."""
    errors: list[str] = field(default_factory=list)
    """Distinct errors of failed attempts (secrets taken out)."""
    busy: bool = False
    """Another process was delivering; this call did nothing."""

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return asdict(self)


def redact_url(url: str) -> str:
    """``url`` as ``scheme://host[:port]/path``: no user info, query or fragment."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback IP address (no DNS lookup)."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in {"1", "true", "yes", "on"}


def _int_setting(config: HomeConfig, name: str, default: int, minimum: int) -> int:
    value = config.get(f"events.{name}", default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = minimum - 1
    if isinstance(value, bool) or number < minimum:
        raise UsageError(
            f"[events] {name} must be a whole number of at least {minimum}, not {value!r}",
            hint=f"fix airlock.toml or AIRLOCK_EVENTS_{name.upper()}",
        )
    return number


def load_settings(config: HomeConfig) -> DeliverySettings:
    """Reads and checks the ``[events]`` settings of a home.

    Raises:
        UsageError: a malformed size, a webhook URL that is not http(s), or plain
            http to a non-loopback host without ``allow_insecure``.
        SecretError: ``webhook_secret_env`` names a variable that is not set.
    """
    max_bytes = _int_setting(config, "max_file_bytes", DEFAULT_MAX_FILE_BYTES, 1024)
    keep = _int_setting(config, "keep_files", DEFAULT_KEEP_FILES, 0)
    url = str(config.get("events.webhook_url", "") or "").strip()
    if not url:
        return DeliverySettings(max_bytes, keep)
    redacted = redact_url(url)
    parts = urllib.parse.urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        parts = parts._replace(netloc="")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"the events webhook URL {redacted!r} is not an http(s) URL with a host",
            hint="set [events] webhook_url (or AIRLOCK_EVENTS_WEBHOOK_URL) to https://host/path",
        )
    if (
        parts.scheme == "http"
        and not is_loopback_host(parts.hostname)
        and not _truthy(config.get("events.allow_insecure", False))
    ):
        raise UsageError(
            f"refusing to send events over plain http to {redacted}",
            hint="use https, or set [events] allow_insecure = true if the network is private",
        )
    secret: bytes | None = None
    secret_env = str(config.get("events.webhook_secret_env", "") or "").strip()
    if secret_env:
        value = os.environ.get(secret_env, "")
        if not value:
            raise SecretError(
                f"the webhook signing secret variable {secret_env} is not set",
                hint=f"export {secret_env}, or remove [events] webhook_secret_env",
            )
        secret = value.encode("utf-8")
    ca_file = str(config.get("events.ca_file", "") or "")
    if ca_file and not Path(ca_file).is_absolute():
        ca_file = str(config.home / ca_file)
    if ca_file and not Path(ca_file).is_file():
        raise NotFoundError(
            f"the webhook CA file {ca_file} does not exist",
            hint="set [events] ca_file to a PEM bundle, or remove it to use the system's CAs",
        )
    return DeliverySettings(
        max_bytes,
        keep,
        Webhook(
            url=url,
            redacted=redacted,
            secret=secret,
            timeout=_int_setting(config, "timeout_seconds", DEFAULT_TIMEOUT_SECONDS, 1),
            ca_file=ca_file,
            retry_base=_int_setting(config, "retry_base_seconds", DEFAULT_RETRY_BASE_SECONDS, 1),
            retry_max=_int_setting(config, "retry_max_seconds", DEFAULT_RETRY_MAX_SECONDS, 1),
        ),
    )


def event_line(body: dict[str, Any]) -> bytes:
    """The bytes of one event as written to the file and POSTed (compact JSON, sorted keys)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_body(secret: bytes, body: bytes) -> str:
    """The ``X-Airlock-Signature`` value of a POST body: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def pending_filter(webhook: bool) -> Any:
    """The SQL condition of an event still to deliver (to the file, or to the webhook too)."""
    if webhook:
        return or_(col(OutboxEvent.written_at) == "", col(OutboxEvent.delivered_at) == "")
    return col(OutboxEvent.written_at) == ""


def count_pending(engine: Engine, webhook: bool) -> int:
    """How many events are still to deliver."""
    with Session(engine) as session:
        query = select(func.count()).select_from(OutboxEvent).where(pending_filter(webhook))
        return int(session.exec(query).one())


def deliver(
    engine: Engine,
    home: Path,
    config: HomeConfig,
    now: dt.datetime,
    client: httpx.Client | None = None,
    *,
    wait: bool = True,
    max_posts: int = POSTS_PER_CALL,
) -> DeliveryReport:
    """Drains the outbox of a home: the JSON-lines file first, then the webhook.

    Args:
        engine: The home's database (with the ``event_outbox`` table).
        home: The home directory (the file goes to ``home/events/outbox.jsonl``).
        config: The home's configuration (``[events]``).
        now: The current time (the marks and the retry schedule use it).
        client: The HTTP client to POST with (default: a new one, closed after).
        wait: Wait for another process delivering from this home; if false,
            return a ``busy`` report at once instead.
        max_posts: At most this many POSTs in this call.

    Raises:
        UsageError, SecretError: the ``[events]`` settings are invalid
            (nothing was written or sent).
        AirlockError: the outbox file could not be written (no event was
            marked; they stay pending).
    """
    settings = load_settings(config)
    report = DeliveryReport(webhook=settings.webhook.redacted if settings.webhook else "")
    report.pending = count_pending(engine, settings.webhook is not None)
    if report.pending == 0:
        return report
    events_dir = Path(home) / EVENTS_DIR
    with _delivery_lock(events_dir, wait) as acquired:
        if not acquired:
            report.busy = True
            return report
        report.written = _write_file(engine, events_dir, settings, now)
        if settings.webhook is not None:
            _post_all(engine, settings.webhook, now, client, max_posts, report)
    report.pending = count_pending(engine, settings.webhook is not None)
    return report


@contextlib.contextmanager
def _delivery_lock(events_dir: Path, wait: bool) -> Iterator[bool]:
    """Holds ``events/.lock`` (one delivery per home at a time); yields whether it got it."""
    events_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(events_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    acquired = True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        acquired = False
    try:
        yield acquired
    finally:
        if acquired:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _write_file(
    engine: Engine, events_dir: Path, settings: DeliverySettings, now: dt.datetime
) -> int:
    """Step 1: append unwritten events to the outbox file, fsync, then mark them."""
    outbox = OutboxFile(events_dir / OUTBOX_FILE, settings.max_file_bytes, settings.keep_files)
    total = 0
    while True:
        with session_scope(engine) as session:
            rows = session.exec(
                select(OutboxEvent)
                .where(col(OutboxEvent.written_at) == "")
                .order_by(col(OutboxEvent.seq))
                .limit(BATCH_SIZE)
            ).all()
            if not rows:
                return total
            try:
                outbox.append([event_line(row.body) for row in rows])
            except OSError as exc:
                raise AirlockError(
                    f"could not write the event outbox file {outbox.path}: {exc.strerror or exc}",
                    hint="check free space and permissions of the home; the events stay "
                    "pending and are written by the next delivery",
                ) from exc
            stamp = utc_iso(now)
            for row in rows:
                row.written_at = stamp
                session.add(row)
        total += len(rows)
        if len(rows) < BATCH_SIZE:
            return total


class OutboxFile:
    """The JSON-lines outbox file, appended with fsync and rotated by size."""

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep

    def append(self, lines: list[bytes]) -> None:
        """Appends ``lines`` (each gets a newline), rotating first whenever one would not fit.

        Raises:
            OSError: the file could not be written or synced.
        """
        size = self.path.stat().st_size if self.path.exists() else 0
        fd = self._open()
        try:
            for line in lines:
                data = line + b"\n"
                if size > 0 and size + len(data) > self.max_bytes:
                    os.fsync(fd)
                    os.close(fd)
                    fd = -1
                    self._rotate()
                    fd = self._open()
                    size = 0
                os.write(fd, data)
                size += len(data)
            os.fsync(fd)
        finally:
            if fd >= 0:
                os.close(fd)
        _fsync_dir(self.path.parent)

    def rotated(self, index: int) -> Path:
        """The ``index``-th older file (1 is the newest)."""
        return self.path.with_name(f"{self.path.name}.{index}")

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def _rotate(self) -> None:
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
        else:
            self.rotated(self.keep).unlink(missing_ok=True)
            for index in range(self.keep - 1, 0, -1):
                if self.rotated(index).exists():
                    self.rotated(index).replace(self.rotated(index + 1))
            self.path.replace(self.rotated(1))
        _fsync_dir(self.path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class _Due:
    seq: int
    source: str
    next_attempt_at: str
    body: bytes


def _post_all(
    engine: Engine,
    hook: Webhook,
    now: dt.datetime,
    client: httpx.Client | None,
    max_posts: int,
    report: DeliveryReport,
) -> None:
    """Step 2: POST written, undelivered events in order, holding back a source after a miss."""
    with Session(engine) as session:
        rows = session.exec(
            select(OutboxEvent)
            .where(col(OutboxEvent.written_at) != "", col(OutboxEvent.delivered_at) == "")
            .order_by(col(OutboxEvent.seq))
            .limit(BATCH_SIZE)
        ).all()
        due = [
            _Due(
                int(row.seq or 0),
                str(row.body.get("source", "")),
                row.next_attempt_at,
                event_line(row.body),
            )
            for row in rows
        ]
    own_client = client is None
    http = client or _make_client(hook)
    held_back: set[str] = set()
    posts = 0
    try:
        for item in due:
            if item.source in held_back:
                continue
            if item.next_attempt_at and parse_utc(item.next_attempt_at) > now:
                held_back.add(item.source)
                continue
            if posts >= max_posts:
                break
            posts += 1
            error = _post_one(http, hook, item.body)
            _record_attempt(engine, hook, item.seq, now, error)
            if error:
                held_back.add(item.source)
                report.failed += 1
                if error not in report.errors:
                    report.errors.append(error)
            else:
                report.delivered += 1
    finally:
        if own_client:
            http.close()


def _make_client(hook: Webhook) -> httpx.Client:
    import httpx  # the `webhooks` extra of airlock-bundles; the ceremony needs none

    verify: ssl.SSLContext | bool = True
    if hook.ca_file:
        verify = ssl.create_default_context(cafile=hook.ca_file)
    return httpx.Client(timeout=hook.timeout, follow_redirects=False, verify=verify)


def _post_one(http: httpx.Client, hook: Webhook, body: bytes) -> str:
    """POSTs one event; returns "" on a 2xx, else the (secret-free) reason."""
    import httpx

    headers = {"Content-Type": CONTENT_TYPE}
    if hook.secret is not None:
        headers[SIGNATURE_HEADER] = sign_body(hook.secret, body)
    try:
        response = http.post(
            hook.url, content=body, headers=headers, timeout=hook.timeout, follow_redirects=False
        )
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
        return hook.scrub(f"{type(exc).__name__} posting to {hook.redacted}: {exc}")[:500]
    if 200 <= response.status_code < 300:
        return ""
    return f"HTTP {response.status_code} from {hook.redacted}"


def _record_attempt(engine: Engine, hook: Webhook, seq: int, now: dt.datetime, error: str) -> None:
    with session_scope(engine) as session:
        row = session.get(OutboxEvent, seq)
        if row is None:  # pragma: no cover - rows are never deleted by Airlock
            return
        row.attempts += 1
        if error:
            row.last_error = error
            row.next_attempt_at = utc_iso(now + hook.backoff(row.attempts))
        else:
            row.delivered_at = utc_iso(now)
            row.next_attempt_at = ""
        session.add(row)


def record_delivery(
    audit: AuditLog, report: DeliveryReport, now: dt.datetime, principal: str | None = None
) -> None:
    """Audits one delivery: ``failure`` if an attempt failed, ``unchanged`` if nothing moved.

    Raises:
        AuditWriteError: the entry could not be written.
    """
    if report.failed:
        outcome = "failure"
    elif report.written or report.delivered:
        outcome = "success"
    else:
        outcome = "unchanged"
    audit.record(
        DELIVER_ACTION,
        outcome,
        object=report.webhook or OUTBOX_FILE,
        details=report.to_dict(),
        principal=principal,
        when=now,
    )


_last_logged: dict[str, float] = {}
LOG_EVERY_SECONDS = 60.0


def deliver_best_effort(
    engine: Engine, home: Path, config: HomeConfig, now: dt.datetime, audit: AuditLog | None = None
) -> DeliveryReport | None:
    """:func:`deliver` for hooks (after a hub operation, in the spoke's background loop).

    Never raises and never waits for another delivery: events that cannot be
    delivered now stay in the outbox for the next call or ``airlock events
    deliver``. Failed webhook attempts are audited when ``audit`` is given; other
    problems are logged (the same message at most once a minute).

    Returns:
        The report, or None when delivery could not run.
    """
    try:
        report = deliver(engine, home, config, now, wait=False)
        if audit is not None and report.failed:
            record_delivery(audit, report, now)
        return report
    except (AirlockError, AuditWriteError, OSError, ValueError) as exc:
        message = exc.message if isinstance(exc, AirlockError) else type(exc).__name__
        moment = time.monotonic()
        if moment - _last_logged.get(message, -LOG_EVERY_SECONDS) >= LOG_EVERY_SECONDS:
            _last_logged[message] = moment
            log.warning("event delivery did not run: %s", message)
        return None
    except Exception:
        log.exception("event delivery failed unexpectedly")
        return None
