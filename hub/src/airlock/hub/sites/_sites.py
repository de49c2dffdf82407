"""Sites as the hub sees them: identity checks and the public view of a registered site.

A site is registered from the ``site-identity.json`` that ``airlock spoke
init`` writes (:class:`~airlock.bundles.models.SiteIdentity`): its age X25519
recipient (bundles are encrypted to it) and its Ed25519 public key (it signs
what the site sends back). Both are checked here before anything is stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import Key
from sqlmodel import Session, select

from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import ConflictError, MediaError, MissingFileError, UsageError
from airlock.bundles.models import SiteIdentity
from airlock.hub.catalog._revocation_view import revocation_entries
from airlock.hub.context._context import HubContext, director_signers, online_expiry
from airlock.hub.context._operation import Operation, operation
from airlock.hub.repos import _director as director_repo
from airlock.hub.store._tables import HubAssignment, HubSite

MAX_TRANSIT_DAYS = 365


def check_recipient(recipient: str) -> str:
    """Parses an age X25519 recipient with pyrage.

    Raises:
        UsageError: it is not a valid ``age1…`` recipient.
    """
    from pyrage import x25519  # native module, load on use

    try:
        x25519.Recipient.from_str(recipient)
    except Exception:
        raise UsageError(
            f"{recipient!r} is not a valid age X25519 recipient",
            hint="copy the recipient from the site's site-identity.json (it starts with age1)",
        ) from None
    return recipient


def check_signing_key(keyid: str, key: dict[str, Any]) -> Key:
    """Parses a site's public signing key.

    Raises:
        UsageError: the key dict is not a securesystemslib public key.
    """
    try:
        return Key.from_dict(keyid, dict(key))
    except Exception as exc:
        raise UsageError(
            f"the site's signing key is not a valid public key ({type(exc).__name__})",
            hint="use the site-identity.json written by `airlock spoke init`",
        ) from None


def check_transit_days(days: int) -> int:
    """Checks a transit budget in days.

    Raises:
        UsageError: outside 1..365.
    """
    if not 1 <= days <= MAX_TRANSIT_DAYS:
        raise UsageError(
            f"transit budget {days} days is outside 1..{MAX_TRANSIT_DAYS}",
            hint="pass --transit-days with how long a bundle may take to reach the site",
        )
    return days


def read_identity(path: Path) -> SiteIdentity:
    """Reads a ``site-identity.json``.

    Raises:
        NotFoundError: no such file.
        MediaError: not JSON.
        UsageError: not a site identity, or its site id or recipient is malformed.
    """
    try:
        data = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise MissingFileError(
            f"site identity file {path} does not exist",
            hint="copy site-identity.json from the site's `airlock spoke init`",
        ) from None
    except ValueError as exc:
        raise MediaError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a site identity")
    return SiteIdentity.from_dict(data)


def read_public_key_file(path: Path) -> tuple[str, dict[str, Any]]:
    """Reads a public key file: ``{"keyid", "public_key": {...}}`` or a key dict with ``keyid``.

    Raises:
        NotFoundError, MediaError, UsageError: as :func:`read_identity`.
    """
    try:
        data = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise MissingFileError(f"key file {path} does not exist") from None
    except ValueError as exc:
        raise MediaError(f"{path} is not valid JSON ({exc})") from None
    try:
        if "public_key" in data:
            return str(data["keyid"]), dict(data["public_key"])
        key = dict(data)
        return str(key.pop("keyid")), key
    except (KeyError, TypeError, AttributeError):
        raise UsageError(
            f"{path} is not a public key file",
            hint='expected {"keyid": …, "public_key": {"keytype", "scheme", "keyval"}}',
        ) from None


@dataclass(frozen=True)
class SiteInfo:
    """A registered site, for listings and ``--json`` output."""

    site_id: str
    age_recipient: str
    signing_keyid: str
    transit_days: int
    encrypt: bool
    sequence: int
    created: str
    assignments: dict[str, str]

    @classmethod
    def from_row(cls, row: HubSite, assignments: dict[str, str]) -> SiteInfo:
        """Builds the view of a database row."""
        return cls(
            site_id=row.site_id,
            age_recipient=row.age_recipient,
            signing_keyid=row.signing_keyid,
            transit_days=row.transit_days,
            encrypt=row.encrypt,
            sequence=row.sequence,
            created=row.created,
            assignments=dict(sorted(assignments.items())),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "site_id": self.site_id,
            "age_recipient": self.age_recipient,
            "signing_keyid": self.signing_keyid,
            "transit_days": self.transit_days,
            "encrypt": self.encrypt,
            "sequence": self.sequence,
            "created": self.created,
            "assignments": self.assignments,
        }


def add_site(
    ctx: HubContext, identity: SiteIdentity, transit_days: int | None = None, encrypt: bool = True
) -> SiteInfo:
    """Registers a site and creates its Director metadata (targets v1, no targets).

    Raises:
        UsageError: invalid recipient, signing key or transit budget.
        ConflictError: the site is already registered.
    """
    with operation(ctx, "hub.site.add", identity.site_id) as op:
        return _add_site(ctx, op, identity, transit_days, encrypt)


def add_site_from_file(
    ctx: HubContext, path: Path, transit_days: int | None = None, encrypt: bool = True
) -> SiteInfo:
    """Like :func:`add_site`, reading ``site-identity.json`` inside the audited operation."""
    with operation(ctx, "hub.site.add", str(path)) as op:
        return _add_site(ctx, op, read_identity(path), transit_days, encrypt)


def _add_site(
    ctx: HubContext, op: Operation, identity: SiteIdentity, transit_days: int | None, encrypt: bool
) -> SiteInfo:
    check_recipient(identity.age_recipient)
    check_signing_key(identity.signing_keyid, identity.signing_key)
    days = check_transit_days(
        ctx.home.transit_days_default() if transit_days is None else transit_days
    )
    site_id = identity.site_id
    if op.session.get(HubSite, site_id) is not None or ctx.home.site_dir(site_id).exists():
        raise ConflictError(
            f"site {site_id!r} is already registered",
            hint="site ids are permanent; use `airlock hub site list` to see it",
        )
    site_md = director_repo.new_site(
        site_id,
        ctx.home.site_dir(site_id),
        online_expiry(ctx),
        director_signers(ctx),
        revocation_entries(op.session),
    )
    site_md.stage(op.writes)
    row = HubSite(
        site_id=site_id,
        age_recipient=identity.age_recipient,
        signing_keyid=identity.signing_keyid,
        signing_key=json.dumps(identity.signing_key, sort_keys=True),
        transit_days=days,
        encrypt=encrypt,
        created=utc_iso(ctx.clock.now()),
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


def list_sites(ctx: HubContext) -> list[SiteInfo]:
    """Every registered site with its assignments."""
    with Session(ctx.engine) as session:
        assigned: dict[str, dict[str, str]] = {}
        for a in session.exec(select(HubAssignment)):
            assigned.setdefault(a.site_id, {})[a.name] = a.version
        rows = session.exec(select(HubSite).order_by(HubSite.site_id))  # type: ignore[arg-type]
        return [SiteInfo.from_row(r, assigned.get(r.site_id, {})) for r in rows]
