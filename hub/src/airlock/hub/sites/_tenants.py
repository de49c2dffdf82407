"""Tenants: who may sign which model families in the Image repository.

Every model family belongs to exactly one tenant, for good. The hub-held
role ``models`` delegates one terminating role per tenant, ``tenant-<name>``,
for the paths of that tenant's families (``<family>/*/*`` each), and the
tenant role signs its families' targets directly with the tenant's key. A
tenant's key therefore cannot sign another tenant's models: a spoke's TUF
client only looks for ``classifier/1/model.onnx`` in the role delegated
``classifier/*/*``, and only accepts that role signed by its tenant's key.

A tenant's key is either

* **hub-held** (the default): made by the hub, encrypted with the hub
  passphrase, stored as ``tenant-keys/<name>.pem`` in the hub home; or
* **tenant-held**: any signer URI — ``hsm:…``, or an ``airlock-file:`` key
  file outside the hub home that the tenant's operator unlocks with their own
  passphrase — registered with its public key. The hub opens it through the
  key store only when it must sign the tenant's role (a release into one of
  its families, or an export re-signing the role before it expires) and then
  asks for its secret as :func:`airlock.hub.repos._signing.tenant_secret_name`.

Families released without naming a tenant belong to :data:`DEFAULT_TENANT`,
created with a hub-held key on first use. The delegation of a tenant appears
in ``models`` with the tenant's first family, so adding a tenant signs
nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib import parse

from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.signer import SIGNER_FOR_URI_SCHEME, Key, Signer, SSlibKey
from sqlmodel import Session, select

from airlock.bundles import tuf as tufrepo
from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import (
    ConflictError,
    MediaError,
    MissingFileError,
    NotFoundError,
    UsageError,
)
from airlock.bundles.models import check_name
from airlock.hub.context._context import HubContext, load_director_roots, load_image_repo
from airlock.hub.context._operation import Operation, operation
from airlock.hub.repos import _image as image_repo
from airlock.hub.repos import _signing as signing
from airlock.hub.repos._image import ImageRepo
from airlock.hub.sites._sites import read_public_key_file
from airlock.hub.store._tables import HubFamily, HubTenant

DEFAULT_TENANT = "default"
HELD_BY_HUB = "hub"
HELD_BY_TENANT = "tenant"


@dataclass(frozen=True)
class TenantInfo:
    """A tenant, for listings and ``--json`` output (public data only)."""

    name: str
    keyid: str
    key_uri: str
    held_by: str
    created: str
    families: tuple[str, ...]

    @property
    def role(self) -> str:
        """The tenant's Image role name."""
        return tufrepo.tenant_role(self.name)

    @classmethod
    def from_row(cls, row: HubTenant, families: list[str]) -> TenantInfo:
        """Builds the info from a table row and the tenant's family names."""
        return cls(row.name, row.keyid, row.key_uri, row.held_by, row.created, tuple(families))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "role": self.role,
            "keyid": self.keyid,
            "key_uri": self.key_uri,
            "held_by": self.held_by,
            "created": self.created,
            "families": list(self.families),
        }


def public_key(row: HubTenant) -> Key:
    """The tenant's public key."""
    return Key.from_dict(row.keyid, json.loads(row.public_key))


def read_public_key(path: Path) -> Key:
    """Reads a tenant-held key's public key: PEM (SubjectPublicKeyInfo) or JSON.

    JSON is ``{"keyid", "public_key": {...}}`` or a key dict with ``keyid``
    (as ``airlock hub site add --signing-key`` reads); PEM is what
    ``openssl pkey -pubout`` writes (Ed25519 or ECDSA).

    Raises:
        NotFoundError: no such file.
        MediaError: the file is neither.
        UsageError: it holds no usable public key.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise MissingFileError(f"public key file {path} does not exist") from None
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            return SSlibKey.from_crypto(load_pem_public_key(data))
        except (ValueError, TypeError) as exc:
            raise UsageError(
                f"{path} holds no supported public key ({exc})",
                hint="use an Ed25519 or ECDSA P-256 key (`openssl pkey -in KEY -pubout`)",
            ) from None
    keyid, key = read_public_key_file(Path(path))
    try:
        return Key.from_dict(keyid, dict(key))
    except Exception as exc:
        raise MediaError(
            f"{path} is not a valid public key ({type(exc).__name__})",
            hint='expected PEM, or {"keyid": …, "public_key": {"keytype", "scheme", "keyval"}}',
        ) from None


def get_tenant(session: Session, name: str) -> HubTenant:
    """The tenant ``name``.

    Raises:
        NotFoundError: no such tenant.
    """
    row = session.get(HubTenant, name)
    if row is None:
        raise NotFoundError(
            f"tenant {name!r} does not exist",
            hint=f"add it with `airlock hub tenant add {name}` (see `airlock hub tenant list`)",
        )
    return row


def _family_map(session: Session) -> dict[str, str]:
    return {f.name: f.tenant for f in session.exec(select(HubFamily))}


def family_tenants(ctx: HubContext) -> dict[str, str]:
    """Model family → the tenant it belongs to, for every family."""
    with Session(ctx.engine) as session:
        return _family_map(session)


def list_tenants(ctx: HubContext) -> list[TenantInfo]:
    """Every tenant with its families, by name."""
    with Session(ctx.engine) as session:
        families: dict[str, list[str]] = {}
        for family, tenant in sorted(_family_map(session).items()):
            families.setdefault(tenant, []).append(family)
        rows = session.exec(select(HubTenant).order_by(HubTenant.name))  # type: ignore[arg-type]
        return [TenantInfo.from_row(r, families.get(r.name, [])) for r in rows]


def tenant_signer(ctx: HubContext, session: Session, name: str) -> Signer:
    """The signer of tenant ``name``'s role (a tenant-held key's secret is asked now)."""
    return signer(ctx, get_tenant(session, name))


def family_signer(ctx: HubContext, session: Session, name: str) -> Signer:
    """The signer of the role that signs model family ``name`` (its tenant's).

    Raises:
        NotFoundError: the family has no tenant.
    """
    row = session.get(HubFamily, name)
    if row is None:
        raise NotFoundError(f"model family {name!r} has no tenant")
    return tenant_signer(ctx, session, row.tenant)


def signer(ctx: HubContext, row: HubTenant) -> Signer:
    """The signer of the tenant's role (a tenant-held key's secret is asked for now)."""
    return ctx.signers.tenant(row.name, row.key_uri, public_key(row), row.held_by == HELD_BY_TENANT)


def check_release(session: Session, family: str, tenant: str | None) -> None:
    """Checks a release of ``family`` may name ``tenant`` (None: the family's own, or default).

    Raises:
        ConflictError: the family belongs to another tenant.
        NotFoundError: a new family names a tenant that does not exist.
        UsageError: the tenant name is invalid.
    """
    if tenant is None:
        return
    check_name("tenant name", tenant)
    row = session.get(HubFamily, family)
    if row is not None and row.tenant != tenant:
        raise ConflictError(
            f"model family {family!r} belongs to tenant {row.tenant!r}, not {tenant!r}",
            hint=f"a family's tenant never changes: release it with --tenant {row.tenant}, "
            f"or release the model under a new family name for tenant {tenant!r}",
        )
    if row is None and tenant != DEFAULT_TENANT:
        get_tenant(session, tenant)


def add_tenant(
    ctx: HubContext, name: str, key_uri: str | None = None, public_key: Key | None = None
) -> TenantInfo:
    """Registers a tenant; its Image role appears with its first family.

    Args:
        ctx: The hub.
        name: The tenant's name.
        key_uri: A tenant-held key's signer URI (``hsm:…``, ``airlock-file:/path``);
            None makes a hub-held key, encrypted with the hub passphrase.
        public_key: The tenant-held key's public key (required with ``key_uri``).

    Raises:
        UsageError: invalid name or key arguments.
        ConflictError: the tenant exists, or the key is already in use.
    """
    with operation(ctx, "hub.tenant.add", name) as op:
        return _add_tenant(ctx, op, name, key_uri, public_key)


def _add_tenant(
    ctx: HubContext, op: Operation, name: str, key_uri: str | None, key: Key | None
) -> TenantInfo:
    """Registers tenant ``name`` inside its operation.

    Raises:
        UsageError: invalid name, or a key URI without a public key (or the reverse),
            or a URI scheme no signer handles.
        ConflictError: the tenant exists, or its key is already another role's.
    """
    check_name("tenant name", name)
    if op.session.get(HubTenant, name) is not None:
        raise ConflictError(
            f"tenant {name!r} already exists",
            hint="tenants are permanent; see `airlock hub tenant list`",
        )
    if key_uri is None:
        if key is not None:
            raise UsageError(
                "a public key was given without a key URI",
                hint="pass --key-uri with --public-key (a tenant-held key), or neither",
            )
        row = _create_hub_held(ctx, op, name)
    else:
        if key is None:
            raise UsageError(
                f"the tenant-held key {key_uri} needs its public key",
                hint="pass --public-key FILE (PEM or the JSON key dict with its keyid)",
            )
        _check_uri(key_uri)
        _check_unused(ctx, op.session, key)
        row = HubTenant(
            name=name,
            keyid=key.keyid,
            key_uri=key_uri,
            public_key=json.dumps(key.to_dict(), sort_keys=True),
            held_by=HELD_BY_TENANT,
            created=utc_iso(ctx.clock.now()),
        )
        op.session.add(row)
    op.details = {
        "tenant": name,
        "keyid": row.keyid,
        "key_uri": row.key_uri,
        "held_by": row.held_by,
    }
    return TenantInfo.from_row(row, [])


def place_family(
    ctx: HubContext, op: Operation, image: ImageRepo, family: str, tenant: str | None
) -> tuple[HubTenant, bool]:
    """The tenant whose role signs ``family``; a new family is delegated to it first.

    A new family goes to ``tenant`` (default: :data:`DEFAULT_TENANT`, created
    with a hub-held key if missing); its paths join the tenant's delegation
    in ``models``, which is re-signed.

    Returns:
        The tenant's row, and whether the family is new.

    Raises:
        ConflictError: the family belongs to another tenant.
        NotFoundError: ``tenant`` does not exist.
    """
    check_release(op.session, family, tenant)
    existing = op.session.get(HubFamily, family)
    if existing is not None:
        op.details["tenant"] = existing.tenant
        return get_tenant(op.session, existing.tenant), False
    name = tenant or DEFAULT_TENANT
    row = op.session.get(HubTenant, name)
    if row is None:
        row = _create_hub_held(ctx, op, name)
        op.details["new_tenant_keyid"] = row.keyid
    image_repo.delegate_family(
        image,
        name,
        family,
        public_key(row),
        tufrepo.expiry_from(ctx.clock.now(), tufrepo.ONLINE_ROLE_EXPIRY_DAYS),
        ctx.signers.online(signing.IMAGE_MODELS),
    )
    op.session.add(HubFamily(name=family, tenant=name, created=utc_iso(ctx.clock.now())))
    op.session.flush()
    op.details["tenant"] = name
    op.details["new_family"] = True
    return row, True


def _create_hub_held(ctx: HubContext, op: Operation, name: str) -> HubTenant:
    relative = ctx.home.tenant_key_path(name)
    ref, pem = ctx.signers.new_tenant_key(name, relative)
    op.writes.put(ctx.home.root / relative, pem, mode=0o600)
    row = HubTenant(
        name=name,
        keyid=ref.keyid,
        key_uri=ref.uri,
        public_key=json.dumps(ref.public_key.to_dict(), sort_keys=True),
        held_by=HELD_BY_HUB,
        created=utc_iso(ctx.clock.now()),
    )
    op.session.add(row)
    op.session.flush()
    return row


def _check_uri(key_uri: str) -> None:
    scheme = parse.urlparse(key_uri).scheme
    if scheme not in SIGNER_FOR_URI_SCHEME:
        raise UsageError(
            f"no signer handles key URIs like {key_uri!r}",
            hint="use airlock-file:/path/to/key.pem (a key file the tenant unlocks) or hsm:…",
        )


def _check_unused(ctx: HubContext, session: Session, key: Key) -> None:
    """A tenant-held key must be nobody else's: not the ceremony's, not another tenant's.

    Keys are compared by key id and by public key material (a key id is only a label).
    """
    ceremony = [ref.public_key for ref in ctx.signers.online_refs.values()]
    ceremony += [*load_image_repo(ctx).root.signed.keys.values()]
    ceremony += [*load_director_roots(ctx).root.signed.keys.values()]
    if any(_same_key(key, k) for k in ceremony):
        raise ConflictError(
            f"key {key.keyid} is one of the hub's or the ceremony's keys",
            hint="a tenant needs a key of its own",
        )
    for other in session.exec(select(HubTenant)):
        if _same_key(key, public_key(other)):
            raise ConflictError(
                f"key {key.keyid} is already the key of tenant {other.name!r}",
                hint="each tenant needs a key of its own, or one tenant could sign another's "
                "models",
            )


def _same_key(a: Key, b: Key) -> bool:
    return a.keyid == b.keyid or (a.keytype, a.keyval) == (b.keytype, b.keyval)
