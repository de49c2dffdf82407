"""The verification core for both TUF repositories of a bundle.

Takes the metadata found in a bundle (bytes, keyed by archive name) and the
metadata the site already trusts, and runs the TUF client workflow with
``tuf.ngclient`` through :class:`BundleFetcher`, a fetcher that serves the
bundle's files from memory. Nothing is read from or written to the site's
trusted state here: the Updaters work in a scratch directory, and the caller
promotes :attr:`VerifiedMetadata.new_trusted` only after every later check.

Steps (each fails closed with a specific error):

1. Image repository: root chain from the trusted root, timestamp, snapshot,
   top-level targets (ngclient: signatures, thresholds, versions, expiry).
2. Director repository for this site: the same, plus the targets must name
   this site (``x-airlock-site-id``) and so must every target; the verified
   timestamp's bundle claims (``x-airlock-bundle``) are returned for the
   envelope check.
3. Agreement: every Director target resolves in the Image repository through
   its delegations, with equal length, hashes and model/version/file fields.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any
from urllib import parse

from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, Root, Targets
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface

from airlock.bundles.errors import (
    TrustError,
    UnsafeArchiveError,
    WrongSiteError,
)
from airlock.bundles.tuf._agreement import VerifiedTarget, agree_with_image, target_custom
from airlock.bundles.tuf._errors import UNTRUSTED_HINT, translate_error
from airlock.bundles.tuf._metadata_files import check_root_history
from airlock.bundles.tuf._repo import (
    BUNDLE_FIELD,
    DIRECTOR,
    IMAGE,
    METADATA_PREFIX,
    REPOSITORIES,
    ROOT_FILE,
    SITE_ID_FIELD,
)

SCHEME = "bundle"
TrustedFiles = dict[str, bytes]
"""One repository's trusted metadata: ngclient cache file name → bytes.

Names are those of ngclient's metadata directory: ``root.json`` (the newest
trusted root), ``root_history/N.root.json``, ``timestamp.json``,
``snapshot.json``, ``targets.json`` and ``<delegated role>.json``.
"""


class BundleFetcher(FetcherInterface):
    """Serves one repository's metadata from a bundle, as if it were a remote mirror.

    URLs look like ``bundle://image/3.snapshot.json``. A file the bundle does
    not carry answers 404 at once, which ngclient reads as "no newer version".
    """

    def __init__(self, files: Mapping[str, Mapping[str, bytes]]) -> None:
        self._files = files

    def _fetch(self, url: str) -> Iterator[bytes]:
        parsed = parse.urlparse(url)
        repository = parsed.netloc
        name = parse.unquote(parsed.path.lstrip("/"))
        data = self._files.get(repository, {}).get(name)
        if parsed.scheme != SCHEME or data is None:
            raise tuf_errors.DownloadHTTPError(f"{name} is not in the bundle", 404)
        return iter([data])


@dataclass(frozen=True)
class VerifiedMetadata:
    """The outcome of :func:`verify_repositories`."""

    new_trusted: dict[str, TrustedFiles]
    targets: tuple[VerifiedTarget, ...]
    image_root_version: int
    director_root_version: int
    director_targets_version: int
    expires: dt.datetime
    director_fields: dict[str, Any] = dataclass_field(default_factory=dict)
    """The verified Director targets' extra fields (``x-airlock-revocations``, …)."""
    unsigned: tuple[str, ...] = ()
    """The ``watch`` paths that the verified Image repository does not sign (any more)."""
    bundle_claims: Any = None
    """The verified Director timestamp's ``x-airlock-bundle`` (None: it has none); the
    importer checks the envelope against it (:func:`airlock.bundles.bundle.check_bound`)."""

    def allowed_blobs(self) -> dict[str, int]:
        """sha256 → signed length of every blob the bundle may carry."""
        return {t.sha256: t.length for t in self.targets}


def split_bundle_metadata(metadata: Mapping[str, bytes]) -> dict[str, dict[str, bytes]]:
    """Groups archive entries ``metadata/<repo>/<file>`` by repository.

    Raises:
        UnsafeArchiveError: an entry is outside the two repositories.
    """
    grouped: dict[str, dict[str, bytes]] = {repo: {} for repo in REPOSITORIES}
    for name, data in metadata.items():
        parts = name.split("/")
        if len(parts) != 3 or parts[0] != METADATA_PREFIX or parts[1] not in grouped:
            raise UnsafeArchiveError(
                f"unexpected metadata entry {name!r} in the payload",
                hint="bundles carry only Image and Director metadata; do not import it "
                "and tell the hub operator",
            )
        grouped[parts[1]][parts[2]] = data
    return grouped


def verify_repositories(
    metadata: Mapping[str, bytes],
    trusted: Mapping[str, TrustedFiles],
    site_id: str,
    watch: Iterable[str] = (),
) -> VerifiedMetadata:
    """Verifies a bundle's Image and Director metadata for ``site_id``.

    Args:
        metadata: Archive name → bytes of every metadata entry of the bundle.
        trusted: Repository → the site's trusted metadata files (see TrustedFiles).
        site_id: This site's id; Director metadata must name it.
        watch: Target paths to look up in the verified Image repository (the
            site's staged files); those it no longer signs are ``unsigned``.

    Returns:
        What verified, and the metadata to trust from now on.

    Raises:
        SignatureError, FreshnessError, TrustError, WrongSiteError, IntegrityError.
    """
    served = split_bundle_metadata(metadata)
    for repo in REPOSITORIES:
        check_root_history(repo, served[repo])
    with tempfile.TemporaryDirectory(prefix="airlock-tuf-") as scratch:
        updaters = {
            repo: _refreshed_updater(Path(scratch) / repo, repo, trusted[repo], served)
            for repo in REPOSITORIES
        }
        director_targets = _load_verified(Path(scratch) / DIRECTOR, "targets", Targets)
        _check_site(director_targets, site_id)
        targets = tuple(
            agree_with_image(path, target, updaters[IMAGE])
            for path, target in sorted(director_targets.signed.targets.items())
        )
        unsigned = tuple(p for p in sorted(set(watch)) if not _signs(updaters[IMAGE], p))
        new_trusted = {repo: _read_cache(Path(scratch) / repo) for repo in REPOSITORIES}
        roots = {
            repo: Metadata[Root].from_bytes(new_trusted[repo][ROOT_FILE]).signed
            for repo in REPOSITORIES
        }
        timestamps = {
            repo: Metadata.from_bytes(new_trusted[repo]["timestamp.json"]).signed
            for repo in REPOSITORIES
        }
        timestamp_expiry = min(t.expires for t in timestamps.values())
    return VerifiedMetadata(
        new_trusted=new_trusted,
        targets=targets,
        image_root_version=roots[IMAGE].version,
        director_root_version=roots[DIRECTOR].version,
        director_targets_version=director_targets.signed.version,
        expires=timestamp_expiry,
        director_fields=dict(director_targets.signed.unrecognized_fields),
        unsigned=unsigned,
        bundle_claims=timestamps[DIRECTOR].unrecognized_fields.get(BUNDLE_FIELD),
    )


def _refreshed_updater(
    workdir: Path, repo: str, trusted: TrustedFiles, served: Mapping[str, Mapping[str, bytes]]
) -> Updater:
    workdir.mkdir(parents=True)
    for name, data in trusted.items():
        if name == ROOT_FILE:
            continue
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_bytes(data)
    try:
        updater = Updater(
            str(workdir),
            f"{SCHEME}://{repo}/",
            fetcher=BundleFetcher(served),
            bootstrap=trusted[ROOT_FILE],
        )
        updater.refresh()
    except Exception as exc:
        raise translate_error(exc, repo) from None
    return updater


def _load_verified(workdir: Path, role: str, kind: type[Targets]) -> Metadata[Targets]:
    """Reads a role file that ngclient wrote to its cache after verifying it."""
    md = Metadata[Targets].from_bytes((workdir / f"{role}.json").read_bytes())
    if not isinstance(md.signed, kind):
        raise TrustError(f"{role} metadata has the wrong type", hint=UNTRUSTED_HINT)
    return md


def _check_site(director_targets: Metadata[Targets], site_id: str) -> None:
    named = director_targets.signed.unrecognized_fields.get(SITE_ID_FIELD)
    if not named:
        raise WrongSiteError(
            "the Director targets do not name a site",
            hint="refusing site-less instructions; ask the hub for a new export",
        )
    if named != site_id:
        raise WrongSiteError(
            f"the Director metadata is for site {named!r}, this is site {site_id!r}",
            hint="import the bundle exported for this site",
        )
    for path, target in director_targets.signed.targets.items():
        target_site = target_custom(target).get("site_id")
        if target_site != site_id:
            raise WrongSiteError(
                f"Director target {path} is for site {target_site!r}, not {site_id!r}",
                hint="refusing another site's instructions; ask the hub for a new export",
            )


def _signs(image_updater: Updater, path: str) -> bool:
    try:
        return image_updater.get_targetinfo(path) is not None
    except Exception as exc:
        raise translate_error(exc, IMAGE) from None


def _read_cache(workdir: Path) -> TrustedFiles:
    files: TrustedFiles = {}
    for path in sorted(workdir.rglob("*.json")):
        files[path.relative_to(workdir).as_posix()] = path.read_bytes()
    return files


def initial_trusted(root_bytes: bytes) -> TrustedFiles:
    """The trusted files of a repository that only trusts its first root."""
    version = Metadata[Root].from_bytes(root_bytes).signed.version
    return {ROOT_FILE: root_bytes, f"root_history/{version}.root.json": root_bytes}
