"""The hub's Python API: one :class:`Hub` per home directory, no prompts, injectable clock.

Every state-changing method is one :func:`~airlock.hub.operation.operation`:
it holds the home lock, changes the database and the repository files
together with its audit entry, or changes nothing and audits the failure.
Read-only methods (``sites``, ``models``, ``status``) need no passphrase.

Export is split so that tests can build bad bundles from real parts:
:meth:`Hub.plan_export` (computes, writes nothing), :meth:`Hub.commit_export`
(writes a planned bundle and records it), and :meth:`Hub.export` (both, under
one lock). See :mod:`airlock.hub.export` for the lower-level steps.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import Key, SecretsHandler, Signer
from sqlmodel import Session, select

from airlock.bundles import events as event_delivery
from airlock.bundles import tuf as tufrepo
from airlock.bundles.audit import AuditLog
from airlock.bundles.clock import Clock, SystemClock, utc_iso
from airlock.bundles.errors import ConflictError, NotFoundError, UsageError
from airlock.bundles.models import Envelope, ModelVersion, SiteIdentity, check_name
from airlock.bundles.release import ReleaseInfo, RolloutPlan
from airlock.bundles.schema import open_home_database
from airlock.hub import (
    attestations,
    catalog,
    director_repo,
    image_repo,
    planner,
    revoke,
    rollout_plans,
    signing,
    sites,
    tenants,
    trust_update,
)
from airlock.hub.blobstore import BlobStore
from airlock.hub.bootstrap import build_home
from airlock.hub.change_desk import ChangeDesk, authorize_assignment
from airlock.hub.director_repo import DirectorRoots, DirectorSigners, SiteMetadata
from airlock.hub.export import ExportPlan
from airlock.hub.home import ROLE, HubHome
from airlock.hub.image_repo import ImageRepo
from airlock.hub.intake import stage_model
from airlock.hub.operation import Operation, operation
from airlock.hub.revoke import RevocationResult
from airlock.hub.signing import HubSigners, read_online_refs
from airlock.hub.sites import SiteInfo
from airlock.hub.status import hub_status
from airlock.hub.tables import (
    HubAssignment,
    HubFamily,
    HubSite,
)
from airlock.hub.tenants import TenantInfo
from airlock.hub.trust_update import TRUST_UPDATE_ACTION, TrustUpdate


@dataclass(frozen=True)
class ModelRelease:
    """The outcome of :meth:`Hub.release_model`: the version, and whether it is new."""

    model: ModelVersion
    created: bool


class Hub:
    """One hub home: its database, repositories, blob store and signers."""

    def __init__(self, home: Path, signers: HubSigners, clock: Clock | None = None) -> None:
        self.home = HubHome(Path(home))
        self.config = self.home.config()
        self.engine = open_home_database(self.config, HubSite)
        self.audit = AuditLog(self.engine, ROLE)
        self.signers = signers
        self.clock: Clock = clock or SystemClock()
        self.blobs = BlobStore(self.home.blob_dir)
        self.change_requests = ChangeDesk(self)
        """Change requests: create, approve, reject, move, import (see :mod:`~.change_desk`)."""

    @classmethod
    def init(
        cls, home: Path, ceremony_dir: Path, secrets: SecretsHandler, clock: Clock | None = None
    ) -> Hub:
        """Creates a hub home from a ceremony's output (see :mod:`airlock.hub.bootstrap`)."""
        clock = clock or SystemClock()
        signers = build_home(Path(home), Path(ceremony_dir), secrets, clock)
        return cls(Path(home), signers, clock)

    @classmethod
    def open(cls, home: Path, secrets: SecretsHandler, clock: Clock | None = None) -> Hub:
        """Opens an initialised hub home (keys are loaded on first use).

        Raises:
            NotFoundError: not an initialised hub home.
        """
        hub_home = HubHome(Path(home))
        hub_home.config()
        refs = read_online_refs(hub_home.ceremony_record)
        return cls(Path(home), HubSigners(Path(home), refs, secrets), clock)

    def close(self) -> None:
        """Releases the database connections."""
        self.engine.dispose()

    @contextmanager
    def _op(self, action: str, obj: str, change_request: str = "") -> Iterator[Operation]:
        with operation(
            self.engine, self.home, self.audit, self.clock, action, obj, change_request
        ) as op:
            yield op
        # Committed: hand the events it emitted to the outbox file and the webhook. Best
        # effort: what cannot be delivered now stays in the outbox (`airlock events deliver`).
        event_delivery.deliver_best_effort(
            self.engine, self.home.root, self.config, self.clock.now(), self.audit
        )

    # -- keys -----------------------------------------------------------------

    def online_signer(self, name: str) -> Signer:
        """The signer of an online key (``signing.ONLINE_KEY_NAMES``), loaded once."""
        return self.signers.online(name)

    def director_signers(self) -> DirectorSigners:
        """The three online Director signers."""
        return DirectorSigners(
            targets=self.signers.online(signing.DIRECTOR_TARGETS),
            snapshot=self.signers.online(signing.DIRECTOR_SNAPSHOT),
            timestamp=self.signers.online(signing.DIRECTOR_TIMESTAMP),
        )

    def family_signer(self, session: Session, name: str) -> Signer:
        """The signer of the role that signs model family ``name`` (its tenant's)."""
        row = session.get(HubFamily, name)
        if row is None:
            raise NotFoundError(f"model family {name!r} has no tenant")
        return self.tenant_signer(session, row.tenant)

    def tenant_signer(self, session: Session, name: str) -> Signer:
        """The signer of tenant ``name``'s role (a tenant-held key's secret is asked now)."""
        return tenants.signer(self, tenants.get_tenant(session, name))

    def _online_expiry(self) -> dt.datetime:
        return tufrepo.expiry_from(self.clock.now(), tufrepo.ONLINE_ROLE_EXPIRY_DAYS)

    # -- repositories (read) --------------------------------------------------

    def image_repo(self) -> ImageRepo:
        """The Image repository as stored."""
        return ImageRepo.load(self.home.image_dir)

    def director_roots(self) -> DirectorRoots:
        """The Director root history as stored."""
        return DirectorRoots.load(self.home.director_root_dir)

    def site_metadata(self, site_id: str) -> SiteMetadata:
        """A site's Director metadata as stored."""
        return SiteMetadata.load(self.home.site_dir(site_id), site_id)

    # -- sites ----------------------------------------------------------------

    def add_site(
        self, identity: SiteIdentity, transit_days: int | None = None, encrypt: bool = True
    ) -> SiteInfo:
        """Registers a site and creates its Director metadata (targets v1, no targets).

        Raises:
            UsageError: invalid recipient, signing key or transit budget.
            ConflictError: the site is already registered.
        """
        with self._op("hub.site.add", identity.site_id) as op:
            return self._add_site(op, identity, transit_days, encrypt)

    def add_site_from_file(
        self, path: Path, transit_days: int | None = None, encrypt: bool = True
    ) -> SiteInfo:
        """Like :meth:`add_site`, reading ``site-identity.json`` inside the audited operation."""
        with self._op("hub.site.add", str(path)) as op:
            return self._add_site(op, sites.read_identity(path), transit_days, encrypt)

    def _add_site(
        self, op: Operation, identity: SiteIdentity, transit_days: int | None, encrypt: bool
    ) -> SiteInfo:
        sites.check_recipient(identity.age_recipient)
        sites.check_signing_key(identity.signing_keyid, identity.signing_key)
        days = sites.check_transit_days(
            self.home.transit_days_default() if transit_days is None else transit_days
        )
        site_id = identity.site_id
        if op.session.get(HubSite, site_id) is not None or self.home.site_dir(site_id).exists():
            raise ConflictError(
                f"site {site_id!r} is already registered",
                hint="site ids are permanent; use `airlock hub site list` to see it",
            )
        site_md = director_repo.new_site(
            site_id,
            self.home.site_dir(site_id),
            self._online_expiry(),
            self.director_signers(),
            revoke.revocation_entries(op.session),
        )
        site_md.stage(op.writes)
        row = HubSite(
            site_id=site_id,
            age_recipient=identity.age_recipient,
            signing_keyid=identity.signing_keyid,
            signing_key=json.dumps(identity.signing_key, sort_keys=True),
            transit_days=days,
            encrypt=encrypt,
            created=utc_iso(self.clock.now()),
        )
        op.session.add(row)
        op.details = {
            "site_id": site_id,
            "age_recipient": identity.age_recipient,
            "signing_keyid": identity.signing_keyid,
            "transit_days": days,
            "encrypt": encrypt,
        }
        return SiteInfo.from_row(row, {})

    def _site(self, session: Session, site_id: str) -> HubSite:
        row = session.get(HubSite, site_id)
        if row is None:
            raise NotFoundError(
                f"site {site_id!r} is not registered",
                hint="register it with `airlock hub site add --identity site-identity.json`",
            )
        return row

    def sites(self) -> list[SiteInfo]:
        """Every registered site with its assignments."""
        with Session(self.engine) as session:
            assigned: dict[str, dict[str, str]] = {}
            for a in session.exec(select(HubAssignment)):
                assigned.setdefault(a.site_id, {})[a.name] = a.version
            rows = session.exec(select(HubSite).order_by(HubSite.site_id))  # type: ignore[arg-type]
            return [SiteInfo.from_row(r, assigned.get(r.site_id, {})) for r in rows]

    # -- tenants --------------------------------------------------------------

    def add_tenant(
        self, name: str, key_uri: str | None = None, public_key: Key | None = None
    ) -> TenantInfo:
        """Registers a tenant; its Image role appears with its first family.

        See :mod:`airlock.hub.tenants` for hub-held and tenant-held keys.

        Args:
            name: The tenant's name.
            key_uri: A tenant-held key's signer URI (``hsm:…``, ``airlock-file:/path``);
                None makes a hub-held key, encrypted with the hub passphrase.
            public_key: The tenant-held key's public key (required with ``key_uri``).

        Raises:
            UsageError: invalid name or key arguments.
            ConflictError: the tenant exists, or the key is already in use.
        """
        with self._op("hub.tenant.add", name) as op:
            return tenants.add_tenant(self, op, name, key_uri, public_key)

    def tenants(self) -> list[TenantInfo]:
        """Every tenant with its model families."""
        with Session(self.engine) as session:
            return tenants.list_tenants(session)

    def family_tenants(self) -> dict[str, str]:
        """Model family → the tenant it belongs to."""
        with Session(self.engine) as session:
            return tenants.family_tenants(session)

    # -- models ---------------------------------------------------------------

    def add_model(
        self,
        name: str,
        version: str,
        path: Path,
        release: ReleaseInfo | None = None,
        extras: Mapping[str, tuple[Path, str]] | None = None,
        *,
        tenant: str | None = None,
        links: Path | None = None,
    ) -> ModelVersion:
        """Releases a model version (see :meth:`release_model`) and returns it."""
        return self.release_model(
            name, version, path, release, extras, tenant=tenant, links=links
        ).model

    def release_model(
        self,
        name: str,
        version: str,
        path: Path,
        release: ReleaseInfo | None = None,
        extras: Mapping[str, tuple[Path, str]] | None = None,
        *,
        tenant: str | None = None,
        links: Path | None = None,
        intake: Mapping[str, Any] | None = None,
    ) -> ModelRelease:
        """Stores a model's files and signs them as Image targets of family ``name``.

        Args:
            name: The model family.
            version: The version (immutable once released).
            path: The ``.onnx`` file or flat model directory.
            release: Lineage, validation thresholds and compatibility, signed
                into the primary target's custom field.
            extras: Other files of the version by target file name: (path,
                kind), e.g. ``{"validation.npz": (path, "validation")}``.
            tenant: The tenant the family belongs to (see :mod:`airlock.hub.tenants`);
                None means the family's tenant, or ``default`` for a new family.
            links: A directory of the training pipeline's in-toto links: the
                current layout, these links and a ``package`` link the hub records
                become targets of the version (see :mod:`airlock.hub.attestations`).
            intake: Where an imported version came from (the MLflow URI, the
                alias and the version it resolved to): recorded in the audit
                entry, whose action is then ``hub.model.import``.

        Re-releasing identical bytes and release record changes nothing
        (``created`` is False). The lineage's MLflow alias is not compared: a
        version imported again through another alias is unchanged, keeps the
        first import's alias in its signed record, and audits the new one.

        Raises:
            UsageError: bad name, path layout, ONNX graph, or a validation
                spec naming a file the version does not have.
            ConflictError: the version exists with different files or record, or
                the family belongs to another tenant than ``tenant``.
            NotFoundError: a new family names a tenant that does not exist.
            SecretError: the hub passphrase, or a tenant-held key's secret, is wrong.
            AttestationError: the links do not verify against the current layout.
        """
        action = "hub.model.import" if intake is not None else "hub.model.add"
        with self._op(action, f"{name}@{version}") as op:
            check_name("model name", name)
            check_name("model version", version)
            tenants.check_release(op.session, name, tenant)
            self.home.tmp_dir.mkdir(exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix="model-", dir=self.home.tmp_dir))
            op.cleanup.append(lambda: shutil.rmtree(staging, ignore_errors=True))
            staged = stage_model(Path(path), staging, extras)
            if links is not None:
                staged = attestations.attach(self, op, f"{name}@{version}", staged, Path(links))
            model = ModelVersion(
                name=name, version=version, files=staged.files, release=release or ReleaseInfo()
            )
            _check_release(model)
            op.details = op.details | {
                "model": name,
                "version": version,
                "files": [f.to_dict() for f in model.files],
                "release": model.release.to_dict(),
            }
            if intake is not None:
                op.details["intake"] = dict(intake)
            revoke.check_not_revoked(op.session, name, version, "release")
            existing = catalog.find_model(op.session, name, version)
            if existing is not None:
                if set(existing.files) != set(model.files) or (
                    _immutable_record(existing.release) != _immutable_record(model.release)
                ):
                    raise ConflictError(
                        f"{model.ref} is already released with different files or release record",
                        hint="released versions are immutable; release the change as a new version",
                    )
                op.outcome = "unchanged"
                return ModelRelease(existing, created=False)
            self._sign_model(op, model, tenant)
            for file in model.files:
                if self.blobs.promote(staged.staged_path(file), file.sha256):
                    op.undo.append(functools.partial(self.blobs.remove, file.sha256))
            return ModelRelease(model, created=True)

    def _sign_model(self, op: Operation, model: ModelVersion, tenant: str | None) -> None:
        now = utc_iso(self.clock.now())
        expires = self._online_expiry()
        image = self.image_repo()
        row, new_family = tenants.place_family(self, op, image, model.name, tenant)
        roles = [tufrepo.tenant_role(row.name)]
        if new_family:
            roles.append(tufrepo.MODELS_ROLE)
        image_repo.add_model(image, model, row.name, expires, tenants.signer(self, row))
        image_repo.refresh(
            image,
            expires,
            self.signers.online(signing.IMAGE_SNAPSHOT),
            self.signers.online(signing.IMAGE_TIMESTAMP),
        )
        image.stage(op.writes, [*roles, image_repo.SNAPSHOT, image_repo.TIMESTAMP])
        catalog.add_model_rows(op.session, model, now)

    def models(self) -> list[ModelVersion]:
        """Every released model version, by name and version."""
        with Session(self.engine) as session:
            return catalog.list_models(session)

    # -- in-toto layout -------------------------------------------------------

    def draft_layout(
        self, functionaries: Mapping[str, Sequence[Path]], expires_days: int, out: Path
    ) -> attestations.LayoutInfo:
        """Writes an unsigned in-toto layout to ``out`` (the package key is made at first use).

        Args:
            functionaries: Pipeline step → PEM public key files of its functionaries.
            expires_days: The layout's lifetime (at most the officers' layout role's).
            out: A new file.

        See :mod:`airlock.hub.attestations` (``UsageError``, ``ConflictError``, ``TrustError``).
        """
        with self._op("hub.layout.draft", str(out)) as op:
            return attestations.draft(self, op, functionaries, expires_days, Path(out))

    def set_layout(self, path: Path) -> attestations.LayoutInfo:
        """Makes the officers' signed layout at ``path`` the current one.

        Raises:
            AttestationError: not signed by a threshold of the anchored layout keys,
                expired, or outliving the anchored layout role.
            UsageError: the layout does not name this hub's package key.
        """
        with self._op("hub.layout.set", str(path)) as op:
            return attestations.set_layout(self, op, Path(path))

    def layout_info(self) -> attestations.LayoutInfo | None:
        """The current layout's summary, or None when no layout is set."""
        return attestations.layout_info(self)

    # -- assignments ----------------------------------------------------------

    def assign(
        self,
        site_id: str,
        name: str,
        version: str,
        plan: RolloutPlan | None = None,
        *,
        plan_file: Path | None = None,
        change: str | None = None,
    ) -> bool:
        """Tells a site to run ``name@version`` (replacing its previous version of ``name``).

        The rollout plan is signed into the site's Director targets, in the
        custom field of the version's primary file (``custom.airlock.rollout``),
        and with ``change`` the change request's signed authorisation next to
        it (``custom.airlock.change``; see :mod:`airlock.hub.change_desk`).

        Args:
            site_id: The site.
            name: The model family.
            version: The version (never a revoked one).
            plan: The rollout plan; None signs the default :class:`RolloutPlan`.
            plan_file: A TOML plan file (:mod:`airlock.hub.rollout_plans`), read
                inside the audited operation; instead of ``plan``.
            change: The change request it is done under: approved, in Implement,
                covering ``site_id:name@version``, its window not over. Required
                when the hub's ``[change] required`` is true.

        Returns:
            False when the site already had exactly that version under the same
            plan (nothing changed).

        Raises:
            NotFoundError: unknown site or model version.
            ConflictError: the version was revoked.
            UsageError: the plan file is unreadable or invalid, or the change
                request is missing or does not allow this rollout.
        """
        with self._op("hub.assign", f"{site_id}:{name}@{version}", change or "") as op:
            op.details = {"site_id": site_id, "model": name, "version": version}
            if change is not None:
                op.details["change_request"] = change
            if plan_file is not None:
                if plan is not None:
                    raise UsageError("pass either a plan or a plan file, not both")
                op.details["plan_file"] = str(plan_file)
                plan = rollout_plans.read_plan(Path(plan_file))
            plan = plan or RolloutPlan()
            op.details["plan"] = plan.to_dict()
            self._site(op.session, site_id)
            model = catalog.get_model(op.session, name, version)
            revoke.check_not_revoked(op.session, name, version, "assign")
            authorization = authorize_assignment(self, op.session, change, site_id, name, version)
            current = op.session.get(HubAssignment, (site_id, name))
            signed = self.site_metadata(site_id)
            if (
                current is not None
                and current.version == version
                and signed.signed_plan(name, version) == plan.to_dict()
                and signed.signed_change(name, version) == authorization
            ):
                op.outcome = "unchanged"
                return False
            op.details["previous"] = current.version if current else None
            self._resign_site(op, site_id, name, model, plan, authorization)
            assigned = utc_iso(self.clock.now())
            if current is None:
                current = HubAssignment(
                    site_id=site_id, name=name, version=version, assigned=assigned
                )
            current.version, current.assigned = version, assigned
            op.session.add(current)
            revoke.remember_plan(op.session, site_id, name, version, plan, assigned)
            return True

    def unassign(self, site_id: str, name: str) -> None:
        """Removes a site's assignment of model family ``name``.

        Raises:
            NotFoundError: unknown site, or no such assignment.
        """
        with self._op("hub.unassign", f"{site_id}:{name}") as op:
            self._site(op.session, site_id)
            current = op.session.get(HubAssignment, (site_id, name))
            if current is None:
                raise NotFoundError(f"site {site_id!r} has no assignment of model {name!r}")
            op.details = {"site_id": site_id, "model": name, "previous": current.version}
            self._resign_site(op, site_id, name, None)
            op.session.delete(current)

    def _resign_site(
        self,
        op: Operation,
        site_id: str,
        name: str,
        model: ModelVersion | None,
        plan: RolloutPlan | None = None,
        change: dict[str, Any] | None = None,
    ) -> None:
        site_md = self.site_metadata(site_id)
        expires = self._online_expiry()
        signers = self.director_signers()
        director_repo.set_model(site_md, model, name, expires, signers.targets, plan, change)
        director_repo.refresh(site_md, expires, signers)
        site_md.stage(op.writes)
        op.details["director_targets_version"] = site_md.targets.signed.version

    # -- revocation -----------------------------------------------------------

    def revoke(
        self, name: str, version: str, reason: str, change: str | None = None
    ) -> RevocationResult:
        """Revokes ``name@version`` everywhere (see :mod:`airlock.hub.revoke`).

        Removes its targets from the Image role that signs them, records the
        revocation, re-points every site assigned it at the previous good
        version (or unassigns), and lists the revocation with its reason in
        every site's Director targets. It never waits for a change window: it
        is recorded against ``change`` (an open change request), or against an
        emergency change request created after the fact.

        Raises:
            NotFoundError: the version was never released.
            ConflictError: it is already revoked.
            UsageError: no reason given.
            SecretError: a tenant-held key's secret, or the hub passphrase, is wrong.
        """
        with self._op(revoke.REVOKE_ACTION, f"{name}@{version}", change or "") as op:
            return revoke.revoke(self, op, name, version, reason, change)

    def revocations(self) -> list[dict[str, str]]:
        """Every revocation (``model``, ``version``, ``reason``, ``revoked_at``), oldest first."""
        with Session(self.engine) as session:
            return revoke.revocation_entries(session)

    # -- export ---------------------------------------------------------------

    def plan_export(self, site_id: str, *, full: bool = False) -> ExportPlan:
        """Computes a site's next bundle; writes nothing (see :mod:`airlock.hub.planner`).

        Files of versions already sent to the site are left out (a ``delta``
        or ``revocation`` bundle) unless ``full`` is true.

        Raises:
            NotFoundError: unknown site, or a blob is missing.
            UsageError: an offline role expires before the bundle would.
        """
        return planner.plan_export(self, site_id, full=full)

    def commit_export(self, plan: ExportPlan, out_dir: Path) -> Envelope:
        """Writes a planned bundle to ``out_dir`` and records it (sequence, repository, audit).

        Tests may pass a plan whose ``metadata`` or ``blobs`` were replaced to
        craft bad bundles; the envelope is still signed with the real key.

        Raises:
            ConflictError: ``out_dir`` is not new, or the hub changed since the plan.
        """
        with self._op("hub.export", plan.site_id) as op:
            return planner.write_export(self, op, plan, Path(out_dir))

    def export(self, site_id: str, out_dir: Path, *, full: bool = False) -> Envelope:
        """Plans and writes a site's next bundle into ``out_dir`` (must be new or empty).

        ``full`` sends every assigned version's files again (a site that lost media).
        """
        with self._op("hub.export", site_id) as op:
            plan = planner.plan_export(self, site_id, full=full)
            return planner.write_export(self, op, plan, Path(out_dir))

    # -- trust ----------------------------------------------------------------

    def update_trust(self, ceremony_dir: Path) -> TrustUpdate:
        """Adopts a rotation or re-signing ceremony's output (see :mod:`airlock.hub.trust_update`).

        New root versions of both repositories and a newer Image targets join
        the repository; the Image snapshot and timestamp are re-signed. The
        next export of every site carries the whole root chain.

        Raises:
            NotFoundError, MediaError: the ceremony output is missing or malformed.
            TrustError: a fork, other online keys, or a targets changing more than its expiry.
            SignatureError: a root or the targets is not signed by its threshold.
            FreshnessError: older than the hub's trust, or expired.
            ConflictError: nothing in it is newer than what the hub has.
            SecretError: the hub passphrase does not open the online keys.
        """
        with self._op(TRUST_UPDATE_ACTION, str(ceremony_dir)) as op:
            return trust_update.adopt(self, op, Path(ceremony_dir))

    def status(self) -> dict[str, Any]:
        """Versions and expiries of every role, sites, models and assignments."""
        return hub_status(self)


def _immutable_record(release: ReleaseInfo) -> dict[str, Any]:
    """The release record as compared for immutability: without the MLflow alias used."""
    record = release.to_dict()
    if record["lineage"] is not None:
        record["lineage"] = {**record["lineage"], "alias": ""}
    return record


def _check_release(model: ModelVersion) -> None:
    """A validation spec must name a validation file of the version.

    Raises:
        UsageError: it names none, or a file of another kind.
    """
    spec = model.release.validation
    if spec is None:
        return
    names = {f.filename for f in model.files_of_kind("validation")}
    if spec.file not in names:
        raise UsageError(
            f"the validation spec of {model.ref} names {spec.file!r}, which is not a "
            "validation file of the version",
            hint="pass the validation set with the version (e.g. --validation-set FILE)",
        )
