"""The Director root chain an envelope carries: how an offline rotation reaches a site.

``envelope.json`` may carry, next to ``signed`` and ``signatures``, an
unsigned ``roots`` member::

    "roots": {"director": [<1.root.json>, <2.root.json>, …]}

every Director root version as a JSON object, in version order (the hub
writes them all; they are small). Nothing in it is trusted as such: the spoke
walks it from the Director root it trusts with TUF's root-update rule —
each next version exactly one higher, signed by a threshold of the previous
root's root keys *and* of its own — and verifies the envelope with the
envelope keys of the newest root reached (:func:`walk_root_chain`). A
rotation signed offline that replaces a stolen envelope key is therefore
honoured before the envelope is checked, and the spoke treats a bundle that
advances its trusted Director root as a reset of what online keys could have
poisoned (sequence, time floor; see :mod:`airlock.spoke.importing._importer`).

:func:`parse_root_chain` checks the shape of the raw ``roots`` value itself
(the envelope parser only passes it through). Both functions take parsed
data and do no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, Root

from airlock.bundles.errors import MediaError, SignatureError, TrustError
from airlock.bundles.tuf._repo import DIRECTOR

ROOTS_HINT = "the medium is damaged or the envelope was altered; ask the hub for a new export"


def parse_root_chain(value: Any) -> list[Metadata[Root]]:
    """Parses the raw ``roots`` value of ``envelope.json`` (None: the envelope has none).

    Returns:
        The Director roots, in version order (not yet verified).

    Raises:
        MediaError: not ``{"director": [root, …]}``, a member is not root
            metadata, or the versions are not consecutive and ascending.
    """
    if value is None:
        return []
    if not isinstance(value, dict) or set(value) != {DIRECTOR}:
        raise MediaError('the envelope\'s "roots" is not {"director": [...]}', hint=ROOTS_HINT)
    documents = value[DIRECTOR]
    if not isinstance(documents, list):
        raise MediaError('the envelope\'s "roots.director" is not a list', hint=ROOTS_HINT)
    chain: list[Metadata[Root]] = []
    for index, document in enumerate(documents):
        try:
            if not isinstance(document, dict):
                raise TypeError("not an object")
            md = Metadata[Root].from_dict(dict(document))
            if not isinstance(md.signed, Root):
                raise TypeError(f"a {md.signed.type} document, not a root")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MediaError(
                f'the envelope\'s "roots.director" item {index} is not root metadata ({exc})',
                hint=ROOTS_HINT,
            ) from None
        if chain and md.signed.version != chain[-1].signed.version + 1:
            raise MediaError(
                f"the envelope's Director roots are not in version order "
                f"(version {md.signed.version} follows {chain[-1].signed.version})",
                hint=ROOTS_HINT,
            )
        chain.append(md)
    return chain


def walk_root_chain(trusted: Root, chain: Sequence[Metadata[Root]]) -> Root:
    """Walks ``chain`` from the trusted Director root with TUF's root-update rule.

    Versions up to the trusted one are skipped. Each later version must be
    exactly one above the last verified root and signed by a threshold of
    that root's root keys and of its own.

    Args:
        trusted: The Director root this site trusts.
        chain: The envelope's Director roots (:func:`parse_root_chain`).

    Returns:
        The newest verified root (``trusted`` when the chain reaches no further).

    Raises:
        TrustError: the chain skips the version after the trusted one.
        SignatureError: a version is not signed by both thresholds.
    """
    current = trusted
    for md in chain:
        version = md.signed.version
        if version <= current.version:
            continue
        if version != current.version + 1:
            raise TrustError(
                f"the envelope's Director roots jump from version {current.version} "
                f"(trusted) to {version}",
                hint=ROOTS_HINT,
            )
        for signer_root, whose in ((current, f"version {current.version}"), (md.signed, "its own")):
            try:
                signer_root.verify_delegate(Root.type, md.signed_bytes, md.signatures)
            except tuf_errors.UnsignedMetadataError as exc:
                raise SignatureError(
                    f"Director metadata: root version {version} carried in the envelope is "
                    f"not signed by a threshold of the keys of {whose}: {exc}",
                    hint="the roots were not made in a key ceremony this site trusts; "
                    "do not use the bundle and tell the security officer",
                ) from None
        current = md.signed
    return current
