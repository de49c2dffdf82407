"""The coordinator's workspace: one directory per ceremony, on the coordinator's machine.

Layout::

    WORK/airlock.toml                 role "ceremony"; its database is the audit log
    WORK/coordinator-audit.db         every coordinator step (plan, propose, finalize, seal)
    WORK/plan.toml                    the plan (``ceremony plan new``)
    WORK/offers/<officer>.offer.json  the key offers ``propose`` accepted
    WORK/request.json                 the signing request (``propose``)
    WORK/previous.txt                 rotation: the previous ceremony directory
    WORK/online-keys/<name>.pem       initial ceremony: the hub's new online keys
    WORK/finalized.json               ``finalize`` ran: where the ceremony went (once only)

Officers' private keys never come here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airlock.bundles.atomic import atomic_write_bytes, atomic_write_json
from airlock.bundles.ceremony_output import CEREMONY_FILE
from airlock.bundles.errors import ConflictError, NotFoundError

PLAN_FILE = "plan.toml"
REQUEST_FILE = "request.json"
OFFERS_DIR = "offers"
PREVIOUS_FILE = "previous.txt"
AUDIT_DB = "coordinator-audit.db"
FINALIZED_FILE = "finalized.json"
WRITING, DONE = "writing", "done"


@dataclass(frozen=True)
class Workspace:
    """Paths inside the coordinator's workspace."""

    directory: Path

    @property
    def audit_db(self) -> str:
        """The audit database file name."""
        return AUDIT_DB

    @property
    def plan_file(self) -> Path:
        """The ceremony plan."""
        return self.directory / PLAN_FILE

    @property
    def request_file(self) -> Path:
        """The signing request."""
        return self.directory / REQUEST_FILE

    def offer_copy(self, officer: str) -> Path:
        """Where the accepted offer of ``officer`` is kept."""
        folder = self.directory / OFFERS_DIR
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder / f"{officer}.offer.json"

    def record_previous(self, previous: Path) -> None:
        """Remembers the previous ceremony directory of a rotation."""
        atomic_write_bytes(self.directory / PREVIOUS_FILE, f"{previous.resolve()}\n".encode())

    def previous(self) -> Path | None:
        """The previous ceremony directory of a rotation, if any."""
        path = self.directory / PREVIOUS_FILE
        return Path(path.read_text(encoding="utf-8").strip()) if path.exists() else None

    def require_request(self) -> Path:
        """The request file, which must exist.

        Raises:
            NotFoundError: ``propose`` has not run in this workspace.
        """
        if not self.request_file.exists():
            raise NotFoundError(
                f"{self.directory} holds no signing request",
                hint="run `airlock ceremony propose --workspace` first",
            )
        return self.request_file

    def check_not_finalized(self) -> None:
        """Refuses a workspace whose ceremony was already finalized.

        ``finalized.json`` is written before the output directory is renamed
        into place (state ``writing``) and completed after (``done``). A
        ``writing`` marker whose output directory holds no ceremony is what a
        crash before the rename leaves: nothing was produced, so it does not block.

        Raises:
            ConflictError: the ceremony of this workspace was finalized before.
        """
        marker = self._read_marker()
        if marker is None:
            return
        out = Path(str(marker.get("out", "")))
        if marker.get("state") == WRITING and not (out / CEREMONY_FILE).exists():
            return
        raise ConflictError(
            f"the ceremony of {self.directory} was already finalized into {out}; finalizing "
            "it again would sign a second, different record of the same roots",
            hint=f"use {out} (verify it with `airlock ceremony verify-transcript --dir {out}`); "
            "to change anything, start a new ceremony in a new workspace",
        )

    def mark_finalized(self, out: Path, request_sha256: str, state: str) -> None:
        """Records that the request was finalized into ``out`` (``writing``, then ``done``)."""
        atomic_write_json(
            self.directory / FINALIZED_FILE,
            {"out": str(Path(out).resolve()), "request_sha256": request_sha256, "state": state},
        )

    def clear_finalizing(self, out: Path) -> None:
        """Removes a ``writing`` marker after a finalize that produced nothing in ``out``."""
        marker = self._read_marker()
        if (
            marker is not None
            and marker.get("state") == WRITING
            and not (Path(out) / CEREMONY_FILE).exists()
        ):
            (self.directory / FINALIZED_FILE).unlink(missing_ok=True)

    def _read_marker(self) -> dict[str, Any] | None:
        path = self.directory / FINALIZED_FILE
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            doc = {"out": "?", "state": DONE}  # unreadable marker: fail closed
        return doc if isinstance(doc, dict) else {"out": "?", "state": DONE}
