"""The coordinator's workspace: one directory per ceremony, on the coordinator's machine.

Layout::

    WORK/airlock.toml                 role "ceremony"; its database is the audit log
    WORK/coordinator-audit.db         every coordinator step (plan, propose, finalize, seal)
    WORK/plan.toml                    the plan (``ceremony plan new``)
    WORK/offers/<officer>.offer.json  the key offers ``propose`` accepted
    WORK/request.json                 the signing request (``propose``)
    WORK/previous.txt                 rotation: the previous ceremony directory
    WORK/online-keys/<name>.pem       initial ceremony: the hub's new online keys

Officers' private keys never come here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from airlock.bundles.atomic import atomic_write_bytes
from airlock.bundles.errors import NotFoundError

PLAN_FILE = "plan.toml"
REQUEST_FILE = "request.json"
OFFERS_DIR = "offers"
PREVIOUS_FILE = "previous.txt"
AUDIT_DB = "coordinator-audit.db"


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
