"""The spoke's database tables: trust state, staged models, Director assignments.

Everything the spoke believes lives here, so that one transaction moves it
from one verified state to the next, and several spoke replicas can share a
PostgreSQL database: an import commits only under :func:`lock_state`, on the
state its verification started from. Blobs live on disk, content-addressed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, LargeBinary
from sqlmodel import Field, Session, SQLModel, select

from airlock.bundles.audit import AuditCheckpoint, AuditRecord
from airlock.bundles.errors import StaleBundleError, UsageError
from airlock.bundles.events import OutboxEvent
from airlock.spoke.site._fleet_tables import FLEET_TABLES
from airlock.spoke.site._return_tables import RETURN_TABLES

STATE_ID = 1


class SpokeState(SQLModel, table=True):
    """The single row of import state: sequence, time floor, versions."""

    __tablename__ = "spoke_state"

    id: int = Field(default=STATE_ID, primary_key=True)
    site_id: str
    last_sequence: int = 0
    last_bundle_id: str = ""
    time_floor: str = ""
    image_root_version: int = 1
    director_root_version: int = 1
    director_targets_version: int = 0
    updated_at: str = ""


def trust_position(state: SpokeState) -> tuple[int, str, int, int, int]:
    """What a verification starts from: the last bundle and the trusted metadata versions."""
    return (
        state.last_sequence,
        state.last_bundle_id,
        state.image_root_version,
        state.director_root_version,
        state.director_targets_version,
    )


def lock_state(session: Session, base: SpokeState) -> SpokeState:
    """Locks the state row for the session's transaction; it must still be ``base``.

    An import verifies against the state it read at its start (``base``) and
    commits much later. Another spoke replica sharing the PostgreSQL database
    may have committed an import in between: committing on top of it could
    move the site back to an older bundle, or record a bundle twice. The row
    lock (``SELECT … FOR UPDATE``; on SQLite the write lock the session holds
    already) makes the replicas' commits queue, and the check refuses a commit
    whose verification started from a state that is no longer the current one.

    Raises:
        StaleBundleError: the state changed since ``base`` was read; nothing
            was changed (importing again verifies against the new state).
        UsageError: the database holds no spoke state.
    """
    state = session.exec(
        select(SpokeState).where(SpokeState.id == STATE_ID).with_for_update()
    ).one_or_none()
    if state is None:
        raise UsageError("the database holds no spoke state", hint="run `airlock spoke init`")
    if trust_position(state) != trust_position(base):
        raise StaleBundleError(
            f"another replica imported bundle {state.last_sequence} "
            f"({state.last_bundle_id or 'none'}) meanwhile; nothing changed",
            hint="run the import again: it is verified against the site's new state "
            "(a bundle that is not newer is then refused as already imported)",
        )
    return state


class TrustedMetadataFile(SQLModel, table=True):
    """One file of a repository's trusted TUF metadata (ngclient cache layout)."""

    __tablename__ = "trusted_metadata"

    repository: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class StagedModel(SQLModel, table=True):
    """A model version whose files are verified and staged on this site.

    ``gate`` holds the validation gate's figures for the version (outcome,
    measured accuracy/error and latency, the signed thresholds, the runtime
    it was checked on); see :func:`airlock.spoke.gate._gate.check_version`.
    """

    __tablename__ = "staged_model"

    name: str = Field(primary_key=True)
    version: str = Field(primary_key=True)
    files: str = "[]"
    bundle_id: str = ""
    sequence: int = 0
    staged_at: str = ""
    gate: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class DirectorAssignment(SQLModel, table=True):
    """A model file the hub's Director currently assigns to this site."""

    __tablename__ = "director_assignment"

    path: str = Field(primary_key=True)
    model: str
    version: str
    filename: str
    sha256: str
    length: int


SPOKE_TABLES: list[type[SQLModel]] = [
    SpokeState,
    TrustedMetadataFile,
    StagedModel,
    DirectorAssignment,
    AuditRecord,
    AuditCheckpoint,
    OutboxEvent,
    *FLEET_TABLES,
    *RETURN_TABLES,
]
