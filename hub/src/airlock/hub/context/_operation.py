"""One state-changing hub command as one unit: lock, work, audit, files, commit — or nothing.

:func:`operation` gives the command body an :class:`Operation` to fill in: a
database session, the repository files to write (:class:`StagedWrites`),
hooks to run just before the commit (e.g. renaming a bundle into place) and
undo steps. On success the audit entry is appended *in the same session* as
the state change, the files are written, the hooks run, and the transaction
commits; if any of that fails the files are restored and the undo steps run.
On any failure a "refused" (the request was invalid or untrusted input was
refused) or "failure" (anything else) entry is written on its own, and the
error propagates (an ``OSError`` — disk full, permissions — as an
:class:`AirlockError`, so the CLI reports it like any other failure).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from airlock.bundles import events as event_delivery
from airlock.bundles.audit import AuditLog, failure_details, failure_outcome
from airlock.bundles.clock import Clock
from airlock.bundles.errors import AirlockError, AuditWriteError
from airlock.hub.context._context import HubContext
from airlock.hub.repos._tufmeta import StagedWrites
from airlock.hub.store._home import HubHome

log = logging.getLogger(__name__)


@dataclass
class Operation:
    """What a command body hands back to :func:`operation`."""

    session: Session
    writes: StagedWrites = field(default_factory=StagedWrites)
    details: dict[str, Any] = field(default_factory=dict)
    outcome: str = "success"
    before_commit: list[Callable[[], None]] = field(default_factory=list)
    undo: list[Callable[[], None]] = field(default_factory=list)
    cleanup: list[Callable[[], None]] = field(default_factory=list)


def record_failure(
    audit: AuditLog,
    clock: Clock,
    action: str,
    obj: str,
    exc: BaseException,
    change_request: str = "",
) -> None:
    """Appends the failure entry of ``action``; a log that cannot be written is only logged."""
    try:
        audit.record(
            action,
            failure_outcome(exc),
            object=obj,
            details=failure_details(exc),
            when=clock.now(),
            change_request=change_request,
        )
    except AuditWriteError:
        log.error("could not audit the failure of %s on %s", action, obj)


@contextlib.contextmanager
def operation(
    ctx: HubContext, action: str, obj: str, change_request: str = ""
) -> Iterator[Operation]:
    """Runs one audited, all-or-nothing hub command (see the module docstring).

    ``change_request`` is the change the command acts under: written into a
    failure's entry (a success's entry takes it from ``details``). Once
    committed, the events it emitted go to the outbox file and the webhook, best
    effort: what cannot be delivered now stays in the outbox
    (``airlock events deliver``).
    """
    with _transaction(
        ctx.engine, ctx.home, ctx.audit, ctx.clock, action, obj, change_request
    ) as op:
        yield op
    event_delivery.deliver_best_effort(
        ctx.engine, ctx.home.root, ctx.config, ctx.clock.now(), ctx.audit
    )


@contextlib.contextmanager
def _transaction(
    engine: Engine,
    home: HubHome,
    audit: AuditLog,
    clock: Clock,
    action: str,
    obj: str,
    change_request: str,
) -> Iterator[Operation]:
    try:
        with home.lock():
            op = Operation(session=Session(engine, expire_on_commit=False))
            try:
                yield op
                audit.record(
                    action,
                    op.outcome,
                    object=obj,
                    details=op.details,
                    session=op.session,
                    when=clock.now(),
                )
                op.session.flush()
                op.writes.apply()
                for hook in op.before_commit:
                    hook()
                op.session.commit()
            except BaseException:
                op.session.rollback()
                op.writes.revert()
                for step in reversed(op.undo):
                    try:
                        step()
                    except Exception:
                        log.exception("undo step failed during %s", action)
                raise
            finally:
                for step in op.cleanup:
                    with contextlib.suppress(Exception):
                        step()
                op.session.close()
    except Exception as exc:
        record_failure(audit, clock, action, obj, exc, change_request)
        if isinstance(exc, OSError):
            raise AirlockError(
                f"{action} failed: {exc.strerror or exc}",
                hint="check free space and permissions of the hub home; nothing was changed",
            ) from exc
        raise
