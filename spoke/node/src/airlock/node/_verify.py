"""The node's verification core: what its spoke assigns, checked end to end.

A node trusts two roots, both given at enrolment: the hub's Image root and
the site root (signed by the site key). Each :meth:`NodeVerifier.refresh`:

1. Site-director repository of this node: root chain, timestamp, snapshot,
   targets from the site root (signatures, thresholds, versions, expiry —
   rollback and freeze protection), with the Metadata API at the node's
   clock (:mod:`airlock.node._tuf_client`, whose docstring lists
   every check).
2. Image repository: the same from the spoke's mirror of the hub's metadata,
   except that the Image root and top-level targets must be unexpired; the hub's
   online timestamp, snapshot and delegated targets must be unexpired *or*
   vouched for by the site's short-lived freshness statement, signed by the
   site key, binding exactly their versions and hashes — so a site cut off
   for longer than its transit budget keeps serving what it verified.
3. The node's targets must name this site (``x-airlock-site-id``) and this
   node (``x-airlock-node-id``), and so must every target.
4. Agreement: every file the site director names must be signed by the Image
   repository with the same length, hashes and model/version/file
   (:func:`airlock.bundles.tuf._verify.agree_with_image`) — a spoke cannot hand
   a node a model the hub never signed or has revoked.

Files are then downloaded through the Image client (length and hashes
checked) and written atomically. Transport goes through an injected
``FetcherInterface`` (HTTP with signed requests in production).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, Root, TargetFile, Targets
from tuf.ngclient.fetcher import FetcherInterface

from airlock.bundles import tuf as tufrepo
from airlock.bundles.atomic import atomic_write_bytes
from airlock.bundles.clock import Clock, SystemClock
from airlock.bundles.errors import (
    AirlockError,
    ConflictError,
    FreshnessError,
    IntegrityError,
    MediaError,
    SignatureError,
    TrustError,
    UsageError,
    WrongSiteError,
)
from airlock.bundles.protocol import NODE_ID_FIELD, NodeModel
from airlock.bundles.release import ReleaseInfo
from airlock.bundles.tuf import agree_with_image, parse_metadata
from airlock.node._tuf_client import RepositoryClient

IMAGE_DIR = "image"
SITE_DIR = "site"
ROOT_FILE = "root.json"
_KEEP_GOING = "the node keeps running what it has and tries again at its next poll"


@dataclass(frozen=True)
class VerifiedFile:
    """One file of an assigned version, as the Image repository signs it."""

    path: str
    filename: str
    sha256: str
    length: int
    kind: str
    primary: bool


@dataclass(frozen=True)
class VerifiedAssignment:
    """One model version the site director assigns to this node, verified end to end."""

    node_model: NodeModel
    files: tuple[VerifiedFile, ...]
    release: ReleaseInfo

    @property
    def ref(self) -> str:
        """``model@version``."""
        return f"{self.node_model.model}@{self.node_model.version}"

    @property
    def primary_file(self) -> VerifiedFile:
        """The version's primary model file (checked to exist by :meth:`NodeVerifier.refresh`)."""
        return next(f for f in self.files if f.primary and f.kind == "model")


class NodeVerifier:
    """Verifies a node's assignment from its trusted Image and site roots.

    Args:
        metadata_dir: Where the node keeps the metadata it verified
            (``image/`` and ``site/``, ngclient's cache layout).
        node_id: This node's id; the site-director targets must name it.
        site_id: This node's site; the site root and targets must name it.
        image_url: Base URL of the Image metadata (``…/v1/image/``).
        director_url: Base URL of this node's site-director metadata
            (``…/v1/nodes/{node}/director/``).
        targets_url: Base URL of the Image targets (``…/v1/image/targets/``).
        fetcher: The transport.
        clock: The reference time of every expiry check; stamps :attr:`last_verified`.
    """

    def __init__(
        self,
        metadata_dir: Path,
        node_id: str,
        site_id: str,
        image_url: str,
        director_url: str,
        targets_url: str,
        fetcher: FetcherInterface,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.metadata_dir = Path(metadata_dir)
        self.node_id = node_id
        self.site_id = site_id
        self.image_url = image_url
        self.director_url = director_url
        self.targets_url = targets_url
        self.fetcher = fetcher
        self.clock = clock or SystemClock()
        self.last_verified: dt.datetime | None = None
        self._image: RepositoryClient | None = None

    @property
    def trusted(self) -> bool:
        """Whether both roots were trusted (:meth:`trust`)."""
        return all((self.metadata_dir / d / ROOT_FILE).exists() for d in (IMAGE_DIR, SITE_DIR))

    def trust(self, image_root: bytes, site_root: bytes) -> None:
        """First-time bootstrap: trusts the hub's Image root and the site root.

        Raises:
            ConflictError: the node already trusts roots (trust is never replaced).
            MediaError: a root is not TUF root metadata.
            SignatureError: a root is not signed by a threshold of its own keys.
            WrongSiteError: the site root names another site.
        """
        for directory in (IMAGE_DIR, SITE_DIR):
            if (self.metadata_dir / directory / ROOT_FILE).exists():
                raise ConflictError(
                    f"{self.metadata_dir / directory} already holds trusted metadata",
                    hint="a node's trust is set once at enrolment; re-initialise the node instead",
                )
        image = parse_metadata(image_root, Root, "the Image root")
        site = parse_metadata(site_root, Root, "the site root")
        tufrepo.check_root_signed(image)
        tufrepo.check_root_signed(site)
        self._check_site_root(site.signed)
        for directory, data in ((IMAGE_DIR, image_root), (SITE_DIR, site_root)):
            atomic_write_bytes(self.metadata_dir / directory / ROOT_FILE, data)

    def refresh(self) -> list[VerifiedAssignment]:
        """Verifies the Image and site-director metadata and returns this node's assignment.

        Raises:
            UsageError: the node trusts no roots yet.
            SignatureError, FreshnessError, TrustError, IntegrityError: verification failed.
            WrongSiteError: the metadata is for another site or node.
            MediaError: the spoke could not be reached or did not serve a file.
        """
        self._image = None
        if not self.trusted:
            raise UsageError(
                "this node trusts no roots yet", hint="enrol the node with its bootstrap file"
            )
        now = self.clock.now()
        self._client(SITE_DIR, self.director_url, now, None)
        site_root = Metadata[Root].from_bytes(
            (self.metadata_dir / SITE_DIR / ROOT_FILE).read_bytes()
        )
        self._check_site_root(site_root.signed)
        image = self._client(IMAGE_DIR, self.image_url, now, site_root.signed)
        site_targets = (
            Metadata[Targets]
            .from_bytes((self.metadata_dir / SITE_DIR / "targets.json").read_bytes())
            .signed
        )
        self._check_names(site_targets)
        assignments = self._agree(site_targets, image)
        self._image = image
        self.last_verified = now
        return assignments

    def download(self, file: VerifiedFile, dest: Path) -> Path:
        """Downloads ``file`` into ``dest`` atomically (its length and hashes are checked).

        Raises:
            UsageError: no successful :meth:`refresh` before.
            TrustError, IntegrityError, MediaError: the file did not verify or arrive.
        """
        if self._image is None:
            raise UsageError("the assignment is not verified", hint="refresh before downloading")
        info = self._image_target(self._image, file.path)
        if info is None or info.length != file.length or info.hashes.get("sha256") != file.sha256:
            raise TrustError(f"the Image repository no longer signs {file.path} as verified")
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
        try:
            self._image.download_target(info, partial)
            partial.replace(dest)
        except Exception as exc:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            raise _node_error(exc, f"download of {file.path}") from None
        return dest

    def _client(
        self, directory: str, metadata_url: str, now: dt.datetime, site_root: Root | None
    ) -> RepositoryClient:
        what = "Image metadata" if directory == IMAGE_DIR else "site-director metadata"
        client = RepositoryClient(
            self.metadata_dir / directory,
            metadata_url,
            self.targets_url,
            self.fetcher,
            now,
            site_root,
            self.site_id,
        )
        try:
            client.refresh()
        except Exception as exc:
            raise _node_error(exc, what) from None
        return client

    def _check_site_root(self, root: Root) -> None:
        named = root.unrecognized_fields.get(tufrepo.SITE_ID_FIELD)
        if named != self.site_id:
            raise WrongSiteError(
                f"the site root is for site {named!r}, this node belongs to {self.site_id!r}",
                hint="enrol the node with the bootstrap file of its own site",
            )

    def _check_names(self, targets: Targets) -> None:
        site = targets.unrecognized_fields.get(tufrepo.SITE_ID_FIELD)
        node = targets.unrecognized_fields.get(NODE_ID_FIELD)
        if site != self.site_id or node != self.node_id:
            raise WrongSiteError(
                f"the site-director targets are for node {node!r} of site {site!r}, "
                f"not {self.node_id!r} of {self.site_id!r}",
                hint="refusing another node's assignment; check the spoke URL and node id",
            )
        for path, target in targets.targets.items():
            custom = _custom(target)
            if custom.get("site_id") != self.site_id or custom.get("node_id") != self.node_id:
                raise WrongSiteError(f"site-director target {path} names another node or site")

    def _agree(self, targets: Targets, image: RepositoryClient) -> list[VerifiedAssignment]:
        grouped: dict[tuple[str, str], tuple[NodeModel, list[VerifiedFile], dict[str, Any]]] = {}
        for path, target in sorted(targets.targets.items()):
            self._image_target(image, path)  # walks delegations with the node's error messages
            signed = agree_with_image(path, target, image)
            try:
                node_model = NodeModel.from_dict(_custom(target))
            except (AirlockError, KeyError, TypeError, ValueError) as exc:
                raise TrustError(
                    f"site-director target {path} has malformed fields ({exc})"
                ) from None
            key = (signed.model, signed.version)
            entry = grouped.setdefault(key, (node_model, [], {}))
            if entry[0] != node_model or (node_model.model, node_model.version) != key:
                raise TrustError(f"site-director targets disagree on how to run {key[0]}@{key[1]}")
            entry[1].append(
                VerifiedFile(
                    path=path,
                    filename=signed.filename,
                    sha256=signed.sha256,
                    length=signed.length,
                    kind=signed.kind,
                    primary=signed.primary,
                )
            )
            if signed.primary:
                entry[2].update(signed.image_custom.get("release") or {})
        assignments = []
        for (model, version), (node_model, files, release) in sorted(grouped.items()):
            if sum(1 for f in files if f.primary and f.kind == "model") != 1:
                raise TrustError(
                    f"{model}@{version} is assigned without its one primary model file"
                )
            try:
                info = ReleaseInfo.from_dict(release)
            except UsageError as exc:
                raise TrustError(f"{model}@{version} carries {exc.message}") from None
            assignments.append(VerifiedAssignment(node_model, tuple(files), info))
        return assignments

    def _image_target(self, image: RepositoryClient, path: str) -> TargetFile | None:
        try:
            return image.get_targetinfo(path)
        except Exception as exc:
            raise _node_error(exc, "Image metadata") from None


def _custom(target: TargetFile) -> dict[str, Any]:
    custom = target.custom.get(tufrepo.CUSTOM_KEY) if isinstance(target.custom, dict) else None
    return dict(custom) if isinstance(custom, dict) else {}


def _node_error(exc: Exception, what: str) -> Exception:
    """Maps an ngclient exception to the Airlock error tree, from a node's point of view."""
    if isinstance(exc, AirlockError):
        return exc
    detail = f"{what}: {exc}"
    if isinstance(exc, tuf_errors.ExpiredMetadataError):
        return FreshnessError(
            f"expired {detail}",
            hint="the spoke serves expired metadata; the site admin should check the spoke "
            f"re-signs its site director and imported a recent bundle; {_KEEP_GOING}",
        )
    if isinstance(exc, tuf_errors.BadVersionNumberError):
        return FreshnessError(
            f"{what} would roll back to an older version: {exc}",
            hint=f"the spoke serves older metadata than this node has seen; {_KEEP_GOING}",
        )
    if isinstance(exc, tuf_errors.UnsignedMetadataError):
        return SignatureError(
            f"{what} is not signed by a threshold of trusted keys: {exc}",
            hint=f"do not trust this spoke's answer and tell the site admin; {_KEEP_GOING}",
        )
    if isinstance(exc, tuf_errors.LengthOrHashMismatchError):
        return IntegrityError(
            f"{detail} does not match its signed length or hash", hint=_KEEP_GOING
        )
    if isinstance(exc, tuf_errors.DownloadError):
        return MediaError(f"could not fetch {detail}", hint=f"check the spoke is up; {_KEEP_GOING}")
    if isinstance(exc, OSError):
        return MediaError(f"could not write or read {detail}", hint="check the node's disk")
    if isinstance(exc, tuf_errors.RepositoryError | ValueError | KeyError | TypeError):
        return TrustError(f"{what} does not verify: {exc}", hint=_KEEP_GOING)
    return TrustError(f"{what} could not be verified ({type(exc).__name__}: {exc})")
