"""The hub's state in one small context: :class:`HubContext`, and the functions that read it.

A :class:`HubContext` is what :class:`~airlock.spoke.site.SpokeHome` is on
the spoke: one open hub home — its paths, configuration, database engine,
audit log, clock, blob store and signers. Every hub function takes it as its
first argument (``add_site(ctx, …)``, ``export(ctx, …)``); nothing calls
back into a central object. This module is the bottom of the hub: it
imports only the home, the tables, the blob store, the signers and the
repository loaders.

Open one with :func:`open_hub` (or ``init_hub`` in :mod:`airlock.hub.trust._bootstrap`)
and close it when done (``with open_hub(…) as ctx:``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from securesystemslib.signer import SecretsHandler, Signer
from sqlalchemy import Engine
from sqlmodel import Session

from airlock.bundles import tuf as tufrepo
from airlock.bundles.audit import AuditLog
from airlock.bundles.clock import Clock, SystemClock
from airlock.bundles.config import HomeConfig
from airlock.bundles.errors import NotFoundError
from airlock.bundles.schema import open_home_database
from airlock.hub.repos import _signing as signing
from airlock.hub.repos._blobstore import BlobStore
from airlock.hub.repos._director import DirectorRoots, DirectorSigners, SiteMetadata
from airlock.hub.repos._image import ImageRepo
from airlock.hub.repos._signing import HubSigners, read_online_refs
from airlock.hub.store._home import ROLE, HubHome
from airlock.hub.store._tables import HubSite


@dataclass
class HubContext:
    """One open hub home: its database, repositories, blob store, signers and clock."""

    home: HubHome
    signers: HubSigners
    clock: Clock = field(default_factory=SystemClock)
    config: HomeConfig = field(init=False)
    engine: Engine = field(init=False)
    audit: AuditLog = field(init=False)
    blobs: BlobStore = field(init=False)

    def __post_init__(self) -> None:
        self.home = HubHome(Path(self.home.root))
        self.config = self.home.config()
        self.engine = open_home_database(self.config, HubSite)
        self.audit = AuditLog(self.engine, ROLE)
        self.blobs = BlobStore(self.home.blob_dir)

    def close(self) -> None:
        """Releases the database connections."""
        self.engine.dispose()

    def __enter__(self) -> HubContext:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def hub_context(home: Path, signers: HubSigners, clock: Clock | None = None) -> HubContext:
    """A context over an initialised hub home with the given signers."""
    return HubContext(HubHome(Path(home)), signers, clock or SystemClock())


def open_hub(home: Path, secrets: SecretsHandler, clock: Clock | None = None) -> HubContext:
    """Opens an initialised hub home (keys are loaded on first use).

    Raises:
        NotFoundError: not an initialised hub home.
    """
    hub_home = HubHome(Path(home))
    hub_home.config()
    refs = read_online_refs(hub_home.ceremony_record)
    return hub_context(Path(home), HubSigners(Path(home), refs, secrets), clock)


# -- keys ---------------------------------------------------------------------


def online_signer(ctx: HubContext, name: str) -> Signer:
    """The signer of an online key (``signing.ONLINE_KEY_NAMES``), loaded once."""
    return ctx.signers.online(name)


def director_signers(ctx: HubContext) -> DirectorSigners:
    """The three online Director signers."""
    return DirectorSigners(
        targets=ctx.signers.online(signing.DIRECTOR_TARGETS),
        snapshot=ctx.signers.online(signing.DIRECTOR_SNAPSHOT),
        timestamp=ctx.signers.online(signing.DIRECTOR_TIMESTAMP),
    )


def online_expiry(ctx: HubContext) -> dt.datetime:
    """When metadata signed now by an online key expires."""
    return tufrepo.expiry_from(ctx.clock.now(), tufrepo.ONLINE_ROLE_EXPIRY_DAYS)


# -- repositories (read) --------------------------------------------------------


def load_image_repo(ctx: HubContext) -> ImageRepo:
    """The Image repository as stored."""
    return ImageRepo.load(ctx.home.image_dir)


def load_director_roots(ctx: HubContext) -> DirectorRoots:
    """The Director root history as stored."""
    return DirectorRoots.load(ctx.home.director_root_dir)


def load_site_metadata(ctx: HubContext, site_id: str) -> SiteMetadata:
    """A site's Director metadata as stored."""
    return SiteMetadata.load(ctx.home.site_dir(site_id), site_id)


def get_site(session: Session, site_id: str) -> HubSite:
    """A registered site's row.

    Raises:
        NotFoundError: the site is not registered.
    """
    row = session.get(HubSite, site_id)
    if row is None:
        raise NotFoundError(
            f"site {site_id!r} is not registered",
            hint="register it with `airlock hub site add --identity site-identity.json`",
        )
    return row
