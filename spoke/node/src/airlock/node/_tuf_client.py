"""The node's TUF client: the Metadata API, at the node's clock (Image and site repositories).

``tuf.ngclient`` cannot be told to accept an expired timestamp or snapshot
while still checking everything else, and it reads the system clock. A site
cut off for longer than its transit budget still has to serve its nodes, so
the node runs the TUF client workflow (specification 5.3–5.6) itself with
``tuf.api.metadata``, at the time of its injected clock, for both of its
repositories. For the site-director repository (no ``site_root`` given)
every expired role is refused. For the hub's Image repository, checks in order:

1. Root: from the trusted ``root.json``, each ``N+1.root.json`` the spoke
   serves (up to 32) must be signed by a threshold of the previous root's
   root keys and of its own, with version exactly N+1. The final root must
   be unexpired — otherwise :class:`FreshnessError` "the hub's Image roots
   expired": nothing new is installed until a re-signed root arrives.
2. Timestamp: signed by the root's timestamp threshold; its version and its
   snapshot version never below the trusted ones (rollback).
3. Snapshot: length and hashes as the timestamp lists, version equal to it,
   signed by the snapshot threshold; no role version below the trusted
   snapshot's, no role dropped (rollback).
4. Top-level targets: length/hashes/version as the snapshot lists, signed
   by the targets threshold, unexpired (an offline role, like the root).
5. Delegated targets (walked on lookup, preorder depth-first like
   ngclient): length/hashes/version as the snapshot lists, signed by a
   threshold of the delegating role's keys.
6. Freshness of the online roles (timestamp, snapshot, delegated targets):
   each is unexpired, or — when one is expired — the spoke's site freshness
   statement (:mod:`airlock.bundles.protocol`) is signed by the site
   root's key, names this site, is unexpired, is not older than the last one
   this node accepted, and binds exactly the version and SHA-256 of every one
   of those files the node verified.

Target files: length and hashes as the Image targets sign them. Verified
files are written to ngclient's cache layout only after they verified.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path
from typing import Any, TypeVar
from urllib import parse

from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, MetaFile, Root, Signed, Snapshot, TargetFile, Targets
from tuf.api.metadata import Timestamp as TimestampRole
from tuf.ngclient.config import UpdaterConfig
from tuf.ngclient.fetcher import FetcherInterface

from airlock.bundles.atomic import atomic_write_bytes
from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import AirlockError, FreshnessError, SignatureError
from airlock.bundles.protocol import FRESHNESS_FILE, Statement, verify_statement

ROOT_FILE = "root.json"
STATEMENT_CACHE = FRESHNESS_FILE
_T = TypeVar("_T", bound=Signed)


class RepositoryClient:
    """One refresh of a repository's metadata (see the module docstring); then lookups, downloads.

    Args:
        workdir: The node's Image metadata directory (ngclient's cache layout).
        metadata_url: Base URL of the Image metadata, ending in ``/``.
        targets_url: Base URL of the Image targets, ending in ``/``.
        fetcher: The transport.
        now: The reference time (the node's clock).
        site_root: For the Image repository, the site root the node trusts
            (verifies the freshness statement); None for the site-director
            repository itself (nothing expired is accepted).
        site_id: This node's site.
    """

    def __init__(
        self,
        workdir: Path,
        metadata_url: str,
        targets_url: str,
        fetcher: FetcherInterface,
        now: dt.datetime,
        site_root: Root | None,
        site_id: str,
    ) -> None:
        self.workdir = Path(workdir)
        self.metadata_url = metadata_url
        self.targets_url = targets_url
        self.fetcher = fetcher
        self.now = now
        self.site_root = site_root
        self.site_id = site_id
        self.config = UpdaterConfig()
        self.statement: Statement | None = None
        self._roles: dict[str, Targets] = {}
        self._hashes: dict[str, str] = {}

    def refresh(self) -> None:
        """Steps 1-4 and 6 for timestamp and snapshot (see the module docstring).

        Raises:
            FreshnessError: the roots or targets expired, or an online role
                expired without a valid site freshness statement.
            AirlockError: a site freshness statement did not verify.
            tuf.api.exceptions.RepositoryError, DownloadError: as ngclient would.
        """
        self.root = self._load_root()
        if self.root.is_expired(self.now):
            raise self._expired_offline("root", self.root)
        ts_bytes = self._fetch("timestamp.json", self.config.timestamp_max_length)
        self.timestamp = self._checked(TimestampRole, ts_bytes, self.root, TimestampRole.type)
        base_ts = self._local(TimestampRole, "timestamp.json", self.root, TimestampRole.type)
        if base_ts is not None:
            if self.timestamp.version < base_ts.version:
                raise tuf_errors.BadVersionNumberError(
                    f"timestamp version {self.timestamp.version} is below the trusted "
                    f"{base_ts.version}"
                )
            if self.timestamp.snapshot_meta.version < base_ts.snapshot_meta.version:
                raise tuf_errors.BadVersionNumberError(
                    f"snapshot version {self.timestamp.snapshot_meta.version} is below the "
                    f"trusted {base_ts.snapshot_meta.version}"
                )
        snap_meta = self.timestamp.snapshot_meta
        snap_bytes = self._fetch_role("snapshot", snap_meta, self.config.snapshot_max_length)
        self.snapshot = self._checked(Snapshot, snap_bytes, self.root, Snapshot.type)
        _check_version("snapshot", self.snapshot, snap_meta)
        base_snap = self._local(Snapshot, "snapshot.json", self.root, Snapshot.type)
        for name, info in (base_snap.meta if base_snap else {}).items():
            new = self.snapshot.meta.get(name)
            if new is None or new.version < info.version:
                raise tuf_errors.BadVersionNumberError(
                    f"the snapshot drops {name} or rolls it back below version {info.version}"
                )
        targets_bytes, targets = self._load_targets(Targets.type, self.root)
        if targets.is_expired(self.now):
            raise self._expired_offline("targets", targets)
        for role, data in (("timestamp", ts_bytes), ("snapshot", snap_bytes)):
            self._hashes[role] = hashlib.sha256(data).hexdigest()
        stale = [
            f"{md.type} (version {md.version}, expired {utc_iso(md.expires)})"
            for md in (self.timestamp, self.snapshot)
            if md.is_expired(self.now)
        ]
        if stale:
            self._vouched(", ".join(stale))
        self._roles[Targets.type] = targets
        for name, data in (
            ("timestamp.json", ts_bytes),
            ("snapshot.json", snap_bytes),
            ("targets.json", targets_bytes),
        ):
            atomic_write_bytes(self.workdir / name, data)

    def get_targetinfo(self, target_path: str) -> TargetFile | None:
        """The Image target at ``target_path``, walking delegations (step 5), or None."""
        path = target_path
        to_visit: list[tuple[str, str]] = [(Targets.type, Root.type)]
        visited: set[str] = set()
        while to_visit and len(visited) <= self.config.max_delegations:
            role_name, parent = to_visit.pop(-1)
            if role_name in visited:
                continue
            role = self._delegated(role_name, parent)
            if path in role.targets:
                return role.targets[path]
            visited.add(role_name)
            if role.delegations is None:
                continue
            children = []
            for child, terminating in role.delegations.get_roles_for_target(path):
                children.append((child, role_name))
                if terminating:
                    to_visit = []
                    break
            to_visit.extend(reversed(children))
        return None

    def download_target(self, info: TargetFile, dest: Path) -> None:
        """Downloads ``info`` to ``dest`` (length and hashes checked before it is written)."""
        target_path = info.path
        if self.root.consistent_snapshot:
            dirname, sep, basename = target_path.rpartition("/")
            target_path = f"{dirname}{sep}{next(iter(info.hashes.values()))}.{basename}"
        with self.fetcher.download_file(f"{self.targets_url}{target_path}", info.length) as file:
            info.verify_length_and_hashes(file)
            file.seek(0)
            with open(dest, "wb") as out:
                shutil.copyfileobj(file, out)

    # --- the workflow's pieces ------------------------------------------------------------------

    def _load_root(self) -> Root:
        trusted = Metadata[Root].from_bytes((self.workdir / ROOT_FILE).read_bytes())
        root = _signed(trusted, Root)
        root.verify_delegate(Root.type, trusted.signed_bytes, trusted.signatures)
        for version in range(root.version + 1, root.version + 1 + self.config.max_root_rotations):
            try:
                data = self._fetch(f"{version}.root.json", self.config.root_max_length)
            except tuf_errors.DownloadHTTPError as exc:
                if exc.status_code not in {403, 404}:
                    raise
                break
            new = Metadata[Root].from_bytes(data)
            root.verify_delegate(Root.type, new.signed_bytes, new.signatures)
            root = _signed(new, Root)
            root.verify_delegate(Root.type, new.signed_bytes, new.signatures)
            if root.version != version:
                raise tuf_errors.BadVersionNumberError(
                    f"expected root {version}, got {root.version}"
                )
            atomic_write_bytes(self.workdir / "root_history" / f"{version}.root.json", data)
            atomic_write_bytes(self.workdir / ROOT_FILE, data)
        return root

    def _load_targets(self, role_name: str, delegator: Root | Targets) -> tuple[bytes, Targets]:
        meta = self.snapshot.meta.get(f"{role_name}.json")
        if meta is None:
            raise tuf_errors.RepositoryError(f"the snapshot does not list {role_name}")
        quoted = parse.quote(role_name, "")
        data = self._fetch_role(quoted, meta, self.config.targets_max_length)
        targets = self._checked(Targets, data, delegator, role_name)
        _check_version(role_name, targets, meta)
        self._hashes[f"{role_name}.json"] = hashlib.sha256(data).hexdigest()
        return data, targets

    def _delegated(self, role_name: str, parent: str) -> Targets:
        if role_name in self._roles:
            return self._roles[role_name]
        data, targets = self._load_targets(role_name, self._roles[parent])
        if targets.is_expired(self.now):
            self._vouched(
                f"{role_name} (version {targets.version}, expired {utc_iso(targets.expires)})"
            )
        self._roles[role_name] = targets
        atomic_write_bytes(self.workdir / f"{parse.quote(role_name, '')}.json", data)
        return targets

    def _expired_offline(self, role: str, signed: Root | Targets) -> Exception:
        if self.site_root is None:
            return tuf_errors.ExpiredMetadataError(f"{role}.json is expired")
        return _roots_expired(role, signed)

    def _vouched(self, expired: str) -> None:
        """Step 6: the site's statement must cover every online file verified so far."""
        if self.site_root is None:
            raise tuf_errors.ExpiredMetadataError(f"{expired}")
        try:
            if self.statement is None:
                data, statement = self._fetch_statement()
            else:
                data, statement = None, self.statement
            image = statement.image
            bound = {"timestamp": image.timestamp, "snapshot": image.snapshot, **image.roles}
            for name, sha256 in self._hashes.items():
                if name in ("timestamp", "snapshot"):
                    version = getattr(self, name).version
                else:
                    version = self.snapshot.meta[name].version
                if bound.get(name) != (version, sha256):
                    raise SignatureError(
                        f"the site freshness statement version {statement.version} vouches "
                        f"for other Image metadata than the spoke serves ({name})",
                        hint="do not trust this spoke's answer and tell the site admin",
                    )
        except AirlockError as exc:
            raise type(exc)(f"the hub's Image {expired}, and {exc.message}", exc.hint) from None
        if data is not None:
            atomic_write_bytes(self.workdir / STATEMENT_CACHE, data)
        self.statement = statement

    def _fetch_statement(self) -> tuple[bytes, Statement]:
        """The spoke's statement, verified (signature, site, expiry) and not rolled back."""
        try:
            data = self._fetch(FRESHNESS_FILE, self.config.timestamp_max_length)
        except tuf_errors.DownloadError:
            raise FreshnessError(
                "the spoke serves no site freshness statement",
                hint="the spoke service re-issues it while it runs: the site admin should check "
                "`airlock spoke serve` and `airlock spoke status`",
            ) from None
        assert self.site_root is not None
        statement = verify_statement(data, self.site_root, self.site_id, self.now)
        cached = self.workdir / STATEMENT_CACHE
        known = cached.read_bytes() if cached.exists() else None
        previous = None if known is None else _accepted(known, self.site_root, self.site_id)
        if previous is not None and (
            statement.version < previous.version
            or (statement.version == previous.version and data != known)
        ):
            raise FreshnessError(
                f"the site freshness statement would roll back from version "
                f"{previous.version} to {statement.version}",
                hint="the spoke serves an older statement than this node has seen",
            )
        return data, statement

    def _fetch(self, name: str, max_length: int) -> bytes:
        return self.fetcher.download_bytes(f"{self.metadata_url}{name}", max_length)

    def _fetch_role(self, quoted: str, meta: MetaFile, max_length: int) -> bytes:
        name = (
            f"{meta.version}.{quoted}.json" if self.root.consistent_snapshot else f"{quoted}.json"
        )
        data = self._fetch(name, meta.length or max_length)
        meta.verify_length_and_hashes(data)
        return data

    def _checked(self, kind: type[_T], data: bytes, delegator: Root | Targets, role: str) -> _T:
        md = Metadata[Any].from_bytes(data)
        signed = _signed(md, kind)
        delegator.verify_delegate(role, md.signed_bytes, md.signatures)
        return signed

    def _local(self, kind: type[_T], name: str, root: Root, role: str) -> _T | None:
        """The trusted copy of ``name`` when it still verifies under ``root`` (else None)."""
        try:
            return self._checked(kind, (self.workdir / name).read_bytes(), root, role)
        except (OSError, ValueError, tuf_errors.RepositoryError):
            return None  # none yet, or keys rotated: the new root's own metadata starts over


def _accepted(data: bytes, site_root: Root, site_id: str) -> Statement | None:
    """A statement this node accepted before, read back for its version (None if unreadable)."""
    try:
        return verify_statement(data, site_root, site_id, dt.datetime.min.replace(tzinfo=dt.UTC))
    except AirlockError:
        return None


def _signed(md: Metadata[Any], kind: type[_T]) -> _T:
    if not isinstance(md.signed, kind):
        raise tuf_errors.RepositoryError(f"expected {kind.type} metadata, got {md.signed.type}")
    return md.signed


def _check_version(role: str, signed: Signed, meta: MetaFile) -> None:
    if signed.version != meta.version:
        raise tuf_errors.BadVersionNumberError(
            f"expected {role} version {meta.version}, got {signed.version}"
        )


def _roots_expired(role: str, signed: Root | Targets) -> FreshnessError:
    return FreshnessError(
        f"the hub's Image {role} (version {signed.version}, an offline role) expired "
        f"{utc_iso(signed.expires)}: the roots expired, so this node installs nothing new",
        hint="the node keeps running what it has installed; the security officers must re-sign "
        "the Image root and targets in a ceremony, the hub must adopt them (`airlock hub trust "
        "update`) and export a bundle, and the site admin must import it",
    )
