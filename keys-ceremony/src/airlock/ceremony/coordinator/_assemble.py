"""Counting the officers' signatures: every one verified, none counted twice, thresholds met.

:func:`assemble` is used by ``finalize`` (to make the signed roots) and by
``verify-transcript`` (to check them again from the signature files). It
refuses, with the file that is wrong:

* a signature file made for another ceremony, plan or request;
* a signature by a key no requirement of that file names (not in the plan,
  or a revoked key), or by another officer's key;
* the same key's signature on the same file twice (a file passed twice, or
  copied into another officer's file);
* a signature that does not verify over the request's metadata;
* a file whose thresholds are not met — naming each shortfall.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from securesystemslib.signer import Signature
from tuf.api.metadata import Metadata, Root, Targets

from airlock.bundles import tuf as tufrepo
from airlock.bundles.errors import IntegrityError, SignatureError, UsageError
from airlock.ceremony.documents._request import SigningRequest
from airlock.ceremony.documents._summary import fingerprint
from airlock.ceremony.officer._signing import SignatureFile
from airlock.ceremony.roots import _build as roots


@dataclass(frozen=True)
class SignatureSource:
    """A signature file as handed over: parsed, with where it came from."""

    signatures: SignatureFile
    source: str


def assemble(
    request: SigningRequest, request_sha256: str, files: Sequence[SignatureSource]
) -> dict[str, Metadata[Any]]:
    """Returns every file of the request, signed, once all thresholds are met.

    Raises:
        IntegrityError: a signature file belongs to another ceremony, plan or request.
        UsageError: a signature file from someone who is not an officer, a file the
            request does not have, or a duplicate signature.
        SignatureError: a key that may not sign, a bad signature, or a threshold not met.
    """
    officers = {item["name"] for item in request.plan["officers"]}
    metadata = {path: request.unsigned(path) for path in request.metadata}
    allowed = {
        path: {kid: key for need in request.requirements(path) for kid, key in need.keys.items()}
        for path in request.metadata
    }
    seen: dict[tuple[str, str], str] = {}
    for item in files:
        sigs, source = item.signatures, item.source
        if sigs.ceremony_id != request.ceremony_id or sigs.plan_sha256 != request.plan_sha256:
            raise IntegrityError(
                f"{source} was made for ceremony {sigs.ceremony_id}, not {request.ceremony_id}",
                hint="collect the signature files of this ceremony only",
            )
        if sigs.request_sha256 != request_sha256:
            raise IntegrityError(
                f"{source} signs a different request ({sigs.request_sha256[:16]}…), "
                f"not this one ({request_sha256[:16]}…)",
                hint="the officer signed another version of the request; they must sign "
                "request.json of this workspace again",
            )
        if sigs.officer not in officers:
            raise UsageError(f"{source} comes from {sigs.officer!r}, who is not an officer")
        for sig in sigs.signatures:
            if sig.file not in metadata:
                raise UsageError(f"{source} signs {sig.file}, which is not part of the request")
            key = allowed[sig.file].get(sig.keyid)
            if key is None:
                raise SignatureError(
                    f"{source}: key {fingerprint(sig.keyid)} may not sign {sig.file} "
                    "(it is not in the plan for that role, or it was revoked)",
                    hint="only the keys the request lists for a file count; check the officer "
                    "used the right key directory",
                )
            owner = request.owner(sig.keyid)
            if owner and owner != sigs.officer:
                raise SignatureError(
                    f"{source}: {sigs.officer}'s file carries a signature by {owner}'s key "
                    f"{fingerprint(sig.keyid)}",
                    hint="each officer hands over their own signature file",
                )
            if (sig.file, sig.keyid) in seen:
                raise UsageError(
                    f"duplicate signature: key {fingerprint(sig.keyid)} signed {sig.file} in "
                    f"{seen[(sig.file, sig.keyid)]} and again in {source}",
                    hint="pass every officer's signature file once; a key counts once",
                )
            seen[(sig.file, sig.keyid)] = source
            md = metadata[sig.file]
            signature = Signature(sig.keyid, sig.sig)
            try:
                key.verify_signature(signature, md.signed_bytes)
            except Exception:
                raise SignatureError(
                    f"{source}: the signature of key {fingerprint(sig.keyid)} over {sig.file} "
                    "does not verify",
                    hint="the signature file was altered, or signed another request; the "
                    "officer must sign again",
                ) from None
            md.signatures[sig.keyid] = signature
    _check_thresholds(request, metadata)
    return metadata


def _check_thresholds(request: SigningRequest, metadata: dict[str, Metadata[Any]]) -> None:
    shortfalls = []
    for path, md in metadata.items():
        for need in request.requirements(path):
            have = len(set(md.signatures) & set(need.keys))
            if have < need.threshold:
                shortfalls.append(
                    f"{path} has {have} of the {need.threshold} signatures needed from the "
                    f"{need.label}"
                )
    if shortfalls:
        raise SignatureError(
            "threshold not met: " + "; ".join(shortfalls),
            hint="collect the missing officers' signature files and run finalize again",
        )
    image_root = metadata[request.root_path(tufrepo.IMAGE)].signed
    assert isinstance(image_root, Root)
    for path, md in metadata.items():  # the same checks again, as TUF clients make them
        if isinstance(md.signed, Root):
            tufrepo.check_root_signed(md)
            previous = request.previous_root(path.split("/", 1)[0])
            if previous is not None:
                previous.signed.verify_delegate(Root.type, md.signed_bytes, md.signatures)
        else:
            assert isinstance(md.signed, Targets)
            roots.check_targets_signed(image_root, md)
