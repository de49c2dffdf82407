"""The site director keeps its freshness statement for the Image metadata current.

See :mod:`airlock.bundles.protocol` for what the statement says and why.
The running spoke service re-issues it (through
:func:`airlock.spoke.director._director.refresh_expiring`, every engine tick that
renews metadata) whenever none exists, the trusted Image metadata changed
(a new import), or the stored one is past half its lifetime. Each new
statement has the next version. It is stored with the site roots
(``node_id = ""``) and served at ``/v1/image/site-freshness.json``.

The functions join the caller's session (nothing is committed here).
"""

from __future__ import annotations

import datetime as dt

from securesystemslib.signer import Signer
from sqlmodel import Session, select

from airlock.bundles import tuf as tufrepo
from airlock.bundles.errors import TrustError
from airlock.bundles.protocol import (
    FRESHNESS_FILE,
    LIFETIME,
    binding,
    parse_statement,
    sign_statement,
)
from airlock.spoke.site._fleet_tables import SiteDirectorFile
from airlock.spoke.site._home import SpokeHome
from airlock.spoke.site._tables import TrustedMetadataFile

_SITE_NODE = ""  # the site roots' node id (site_director.SITE_ROOT_NODE)


def stored_statement(session: Session) -> bytes | None:
    """The current statement's bytes, or None before the first one."""
    row = session.get(SiteDirectorFile, (_SITE_NODE, FRESHNESS_FILE))
    return None if row is None else bytes(row.data)


def ensure_statement(
    home: SpokeHome, session: Session, signer: Signer, now: dt.datetime
) -> bytes | None:
    """Re-issues the statement when it is missing, binds older metadata, or is half expired.

    Returns:
        The current statement, or None while the spoke trusts no Image
        metadata yet (nothing imported: nothing to vouch for).
    """
    files = _trusted_image(session)
    if "snapshot.json" not in files:
        return None
    image = binding(files)
    row = session.get(SiteDirectorFile, (_SITE_NODE, FRESHNESS_FILE))
    version = 1
    if row is not None:
        try:
            current = parse_statement(bytes(row.data))
        except TrustError:
            current = None  # unreadable: replace it (the version restarts above nothing known)
        if current is not None:
            if current.image == image and current.expires - now > LIFETIME / 2:
                return bytes(row.data)
            version = current.version + 1
    data = sign_statement(signer, home.site_id, version, image, now)
    if row is None:
        row = SiteDirectorFile(node_id=_SITE_NODE, name=FRESHNESS_FILE, data=data)
    else:
        row.data = data
    session.add(row)
    home.audit.record(
        "spoke.site_director.freshness",
        "success",
        object=f"site-freshness@{version}",
        details={
            "version": version,
            "image_snapshot_version": image.snapshot[0],
            "image_timestamp_version": image.timestamp[0],
        },
        session=session,
        when=now,
    )
    return data


def _trusted_image(session: Session) -> dict[str, bytes]:
    rows = session.exec(
        select(TrustedMetadataFile).where(TrustedMetadataFile.repository == tufrepo.IMAGE)
    )
    return {row.name: bytes(row.data) for row in rows}
