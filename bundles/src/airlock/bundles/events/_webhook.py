"""Step 2 of delivery: POSTing written events to the webhook, with retries.

Each event goes out in structured CloudEvents mode; a 2xx answer marks it
delivered, anything else counts an attempt and schedules a retry with
exponential backoff (:meth:`Webhook.backoff`). Events of one ``source`` go out
in order. The HTTP client is httpx, from the ``webhooks`` extra of
airlock-bundles (the hub and the spoke require it; nothing else imports this
module's client at start-up).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.db._engine import session_scope
from airlock.bundles.events._outbox import OutboxEvent
from airlock.bundles.events._outbox_file import event_line
from airlock.bundles.events._settings import (
    BATCH_SIZE,
    CONTENT_TYPE,
    SIGNATURE_HEADER,
    DeliveryReport,
    Webhook,
)

if TYPE_CHECKING:
    import httpx


def sign_body(secret: bytes, body: bytes) -> str:
    """The ``X-Airlock-Signature`` value of a POST body: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class _Due:
    seq: int
    source: str
    next_attempt_at: str
    body: bytes


def post_all(
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
