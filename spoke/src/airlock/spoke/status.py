"""``airlock spoke status``: what this site trusts, has staged, and is told to run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from airlock.bundles.errors import UsageError
from airlock.spoke.home import SpokeHome
from airlock.spoke.state import STATE_ID, DirectorAssignment, SpokeState, StagedModel


@dataclass(frozen=True)
class SpokeStatus:
    """A snapshot of a spoke's state, for tables and ``--json``."""

    site_id: str
    image_root_version: int
    director_root_version: int
    director_targets_version: int
    last_sequence: int
    last_bundle_id: str
    time_floor: str
    staged: list[dict[str, Any]]
    assigned: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "site_id": self.site_id,
            "trusted_roots": {
                "image": self.image_root_version,
                "director": self.director_root_version,
            },
            "director_targets_version": self.director_targets_version,
            "last_sequence": self.last_sequence,
            "last_bundle_id": self.last_bundle_id,
            "time_floor": self.time_floor,
            "staged_models": self.staged,
            "director_assignments": self.assigned,
        }


def read_status(home: SpokeHome) -> SpokeStatus:
    """Reads the spoke's status from its database.

    Raises:
        UsageError: the home has no spoke state.
    """
    with Session(home.engine) as session:
        state = session.get(SpokeState, STATE_ID)
        if state is None:
            raise UsageError(f"{home.path} has no spoke state", hint="run `airlock spoke init`")
        staged = [
            {
                "model": row.name,
                "version": row.version,
                "files": len(json.loads(row.files)),
                "bytes": sum(int(f["length"]) for f in json.loads(row.files)),
                "sequence": row.sequence,
                "staged_at": row.staged_at,
            }
            for row in session.exec(
                select(StagedModel).order_by(StagedModel.name, StagedModel.version)
            )  # type: ignore[arg-type]
        ]
        assigned: dict[tuple[str, str], dict[str, Any]] = {}
        for row in session.exec(select(DirectorAssignment).order_by(DirectorAssignment.path)):  # type: ignore[arg-type]
            entry = assigned.setdefault(
                (row.model, row.version),
                {"model": row.model, "version": row.version, "files": 0, "staged": True},
            )
            entry["files"] += 1
            entry["staged"] = entry["staged"] and (home.blob_dir / row.sha256).is_file()
        return SpokeStatus(
            site_id=state.site_id,
            image_root_version=state.image_root_version,
            director_root_version=state.director_root_version,
            director_targets_version=state.director_targets_version,
            last_sequence=state.last_sequence,
            last_bundle_id=state.last_bundle_id,
            time_floor=state.time_floor,
            staged=staged,
            assigned=list(assigned.values()),
        )
