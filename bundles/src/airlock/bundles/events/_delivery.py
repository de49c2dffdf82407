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

import datetime as dt
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, or_
from sqlmodel import Session, col, select

from airlock.bundles.audit._log import AuditLog
from airlock.bundles.config import HomeConfig
from airlock.bundles.errors import (
    AirlockError,
    AuditWriteError,
)
from airlock.bundles.events._outbox import OutboxEvent
from airlock.bundles.events._outbox_file import delivery_lock, write_outbox
from airlock.bundles.events._settings import (
    EVENTS_DIR,
    OUTBOX_FILE,
    POSTS_PER_CALL,
    DeliveryReport,
)
from airlock.bundles.events._settings import load_settings as load_settings
from airlock.bundles.events._webhook import post_all

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

DELIVER_ACTION = "events.deliver"


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
    with delivery_lock(events_dir, wait) as acquired:
        if not acquired:
            report.busy = True
            return report
        report.written = write_outbox(engine, events_dir, settings, now)
        if settings.webhook is not None:
            post_all(engine, settings.webhook, now, client, max_posts, report)
    report.pending = count_pending(engine, settings.webhook is not None)
    return report


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
