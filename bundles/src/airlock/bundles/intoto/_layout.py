"""Airlock's in-toto supply-chain layout: draft it, parse it, summarise it, check who signed it.

One layout (legacy in-toto ``Metablock`` format, so the stock ``in-toto-verify``
reads it) governs every model version the hub releases with attestations. It is
drafted at the hub, signed on their offline machines by a threshold of the
security officers' *layout keys* — the keys the Image root anchors in
``x-airlock-layout`` (:func:`airlock.bundles.tuf._repo.layout_keys`) — and travels
in each version as the TUF target ``root.layout``. Its steps and rules::

    train      pipeline key(s)   materials ALLOW *
                                 products  ALLOW *
    evaluate   pipeline key(s)   materials MATCH * WITH PRODUCTS FROM train, ALLOW *
                                 products  ALLOW *
    convert    pipeline key(s)   materials MATCH * WITH PRODUCTS FROM train, ALLOW *
                                 products  ALLOW *
    package    hub package key   materials MATCH * WITH PRODUCTS FROM convert, DISALLOW *
                                 products  MATCH * WITH MATERIALS FROM package, DISALLOW *
    inspection shipped: run ``true`` in the verification directory
                                 materials MATCH * WITH PRODUCTS FROM package,
                                           ALLOW root.layout, ALLOW *.link, ALLOW *.pem,
                                           DISALLOW *

So every file the hub packaged is a product of ``convert`` with the same
SHA-256, ``package`` changed nothing, and every file in the verification
directory (the shipped model files) is one ``package`` produced. The layout,
links and public keys that the stock tool needs next to the model are allowed
by name.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from in_toto.models.layout import Inspection, Layout, Step
from in_toto.models.metadata import Metablock
from securesystemslib.signer import Key, Signer

from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import AttestationError, UsageError

LAYOUT_TARGET = "root.layout"
"""The target file name of the layout in every attested model version."""
PIPELINE_STEPS = ("train", "evaluate", "convert")
PACKAGE_STEP = "package"
STEPS = (*PIPELINE_STEPS, PACKAGE_STEP)
INSPECTION = "shipped"
RESERVED_PATTERNS = (LAYOUT_TARGET, "*.link*", "*.pem", ".git", "*.pyc", "*~")
"""Model file names that would escape the rules: the attestation files the inspection
allows by name, and in-toto's default exclude patterns (never recorded as artifacts)."""
DEFAULT_README = (
    "Airlock model supply chain: the training pipeline trains, evaluates and converts "
    "the model to ONNX; the hub packages exactly the converted files; sites verify that "
    "the shipped files are the ones packaged."
)

_PIPELINE_RULES: dict[str, tuple[list[list[str]], list[list[str]]]] = {
    "train": ([["ALLOW", "*"]], [["ALLOW", "*"]]),
    "evaluate": (
        [["MATCH", "*", "WITH", "PRODUCTS", "FROM", "train"], ["ALLOW", "*"]],
        [["ALLOW", "*"]],
    ),
    "convert": (
        [["MATCH", "*", "WITH", "PRODUCTS", "FROM", "train"], ["ALLOW", "*"]],
        [["ALLOW", "*"]],
    ),
    PACKAGE_STEP: (
        [["MATCH", "*", "WITH", "PRODUCTS", "FROM", "convert"], ["DISALLOW", "*"]],
        [["MATCH", "*", "WITH", "MATERIALS", "FROM", PACKAGE_STEP], ["DISALLOW", "*"]],
    ),
}
_INSPECTION_MATERIALS = [
    ["MATCH", "*", "WITH", "PRODUCTS", "FROM", PACKAGE_STEP],
    ["ALLOW", LAYOUT_TARGET],
    ["ALLOW", "*.link"],
    ["ALLOW", "*.pem"],
    ["DISALLOW", "*"],
]


def fingerprint(keyid: str) -> str:
    """A key id's first 16 hex digits in groups of four, for reading aloud."""
    head = keyid[:16]
    return " ".join(head[i : i + 4] for i in range(0, len(head), 4))


def legacy_key(key: Key) -> dict[str, Any]:
    """The in-toto (legacy) key dict of ``key``: its TUF key dict plus ``keyid``."""
    return key.to_dict() | {"keyid": key.keyid}


def link_filename(step: str, keyid: str) -> str:
    """The in-toto file name of ``step``'s link signed by ``keyid``: ``<step>.<keyid8>.link``."""
    return f"{step}.{keyid[:8]}.link"


def draft_layout(
    functionaries: Mapping[str, Sequence[Key]],
    package_key: Key,
    expires: dt.datetime,
    readme: str = DEFAULT_README,
) -> Metablock:
    """The unsigned layout (see the module docstring).

    Args:
        functionaries: The keys allowed to sign each pipeline step (one of each suffices).
        package_key: The hub's key for the ``package`` step.
        expires: When the layout stops being valid.
        readme: The layout's human-readable description.

    Raises:
        UsageError: a pipeline step has no functionary, or an unknown step is named.
    """
    unknown = sorted(set(functionaries) - set(PIPELINE_STEPS))
    if unknown:
        raise UsageError(
            f"unknown pipeline step {unknown[0]!r}",
            hint=f"the steps the pipeline signs are {', '.join(PIPELINE_STEPS)}; "
            "the hub signs `package` itself",
        )
    keys: dict[str, dict[str, Any]] = {package_key.keyid: legacy_key(package_key)}
    steps = []
    for name in STEPS:
        step_keys = [package_key] if name == PACKAGE_STEP else list(functionaries.get(name, []))
        if not step_keys:
            raise UsageError(
                f"step {name!r} has no functionary key",
                hint=f"pass --functionary {name}=PUBLIC_KEY.pem",
            )
        for key in step_keys:
            keys[key.keyid] = legacy_key(key)
        materials, products = _PIPELINE_RULES[name]
        steps.append(
            Step(
                name=name,
                pubkeys=sorted({key.keyid for key in step_keys}),
                threshold=1,
                expected_command=[],
                expected_materials=copy.deepcopy(materials),
                expected_products=copy.deepcopy(products),
            )
        )
    inspection = Inspection(
        name=INSPECTION,
        run=["true"],
        expected_materials=copy.deepcopy(_INSPECTION_MATERIALS),
        expected_products=[["ALLOW", "*"]],
    )
    layout = Layout(
        steps=steps,
        inspect=[inspection],
        keys=keys,
        expires=expires.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        readme=readme,
    )
    return Metablock(signed=layout)


def layout_bytes(md: Metablock) -> bytes:
    """The layout file's bytes (in-toto's own JSON form, as ``Metablock.dump`` writes it)."""
    return f"{md}".encode()


def layout_sha256(data: bytes) -> str:
    """SHA-256 hex of a layout file's bytes."""
    return hashlib.sha256(data).hexdigest()


def content_sha256(md: Metablock) -> str:
    """SHA-256 hex of what is signed (the canonical layout without signatures).

    Unlike the file's hash it stays the same as officers add signatures: read it
    aloud to compare the layout everyone signs.
    """
    return hashlib.sha256(md.signed.signable_bytes).hexdigest()


def parse_layout(data: bytes, what: str = "the layout") -> Metablock:
    """Parses a legacy (Metablock) in-toto layout.

    Raises:
        AttestationError: not JSON, not a Metablock, or not a valid layout.
    """
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or "signed" not in doc:
            raise ValueError("not an in-toto Metablock (DSSE layouts are not supported)")
        md = Metablock.from_dict(doc)
    except Exception as exc:
        raise AttestationError(
            f"{what} is not a valid in-toto layout ({type(exc).__name__}: {exc})",
            hint="use the file `airlock hub layout draft` wrote, signed with "
            "`airlock ceremony sign-layout`",
        ) from None
    if not isinstance(md.signed, Layout):
        raise AttestationError(f"{what} is an in-toto link, not a layout")
    return md


def layout_expires(md: Metablock) -> dt.datetime:
    """The layout's expiry, aware UTC."""
    text = str(md.signed.expires).replace("Z", "+00:00")
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


def signing_keys(
    md: Metablock, anchored: Mapping[str, Key], threshold: int, what: str = "the layout"
) -> dict[str, dict[str, Any]]:
    """The anchored layout keys that validly signed ``md``, as in-toto key dicts.

    Pass exactly these to ``in_toto_verify``: it requires a valid signature for
    every key it is given.

    Raises:
        AttestationError: fewer than ``threshold`` of them signed.
    """
    good: dict[str, dict[str, Any]] = {}
    for keyid, key in sorted(anchored.items()):
        candidate = legacy_key(key)
        try:
            md.verify_signature(candidate)
        except Exception:  # noqa: S112 - unsigned or badly signed by this key: not counted
            continue
        good[keyid] = candidate
    if len(good) < threshold:
        raise AttestationError(
            f"{what} is signed by {len(good)} of the officers' anchored layout keys; "
            f"{threshold} are needed",
            hint="have a threshold of the security officers sign it with "
            "`airlock ceremony sign-layout`; signatures by other keys do not count",
        )
    return good


def check_expiry(
    md: Metablock, now: dt.datetime, anchored_expires: dt.datetime, what: str = "the layout"
) -> None:
    """The layout must not have expired, nor outlive the officers' layout role.

    Raises:
        AttestationError: it expired, or expires after the anchored layout role does.
    """
    expires = layout_expires(md)
    if expires <= now:
        raise AttestationError(
            f"{what} expired at {utc_iso(expires)}",
            hint="the officers must sign a new layout (`airlock hub layout draft`, "
            "`airlock ceremony sign-layout`, `airlock hub layout set`) and the "
            "version be released again",
        )
    if expires > anchored_expires:
        raise AttestationError(
            f"{what} expires at {utc_iso(expires)}, after the officers' layout role "
            f"({utc_iso(anchored_expires)})",
            hint="draft the layout with fewer --expires-days, or renew the layout role "
            "in a key ceremony first",
        )


def sign(md: Metablock, signer: Signer) -> Metablock:
    """Adds ``signer``'s signature to ``md`` (replacing an earlier one by the same key)."""
    keyid = signer.public_key.keyid
    md.signatures = [s for s in md.signatures if s.get("keyid") != keyid]
    md.create_signature(signer)
    return md


def _rules(rules: list[list[str]]) -> list[str]:
    return [" ".join(rule) for rule in rules]


def layout_summary(
    md: Metablock, data: bytes, names: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """What a person reviews before signing or installing a layout (JSON-ready).

    Args:
        md: The parsed layout.
        data: The layout file's bytes (for its SHA-256).
        names: Optional key id → who holds it, shown next to keys and signatures.
    """
    names = names or {}
    layout: Layout = md.signed

    def key_entry(keyid: str) -> dict[str, str]:
        return {"keyid": keyid, "fingerprint": fingerprint(keyid), "holder": names.get(keyid, "")}

    return {
        "sha256": layout_sha256(data),
        "content_sha256": content_sha256(md),
        "expires": utc_iso(layout_expires(md)),
        "readme": layout.readme,
        "steps": [
            {
                "name": step.name,
                "threshold": step.threshold,
                "functionaries": [key_entry(k) for k in step.pubkeys],
                "expected_command": list(step.expected_command),
                "materials": _rules(step.expected_materials),
                "products": _rules(step.expected_products),
            }
            for step in layout.steps
        ],
        "inspections": [
            {
                "name": item.name,
                "run": list(item.run),
                "materials": _rules(item.expected_materials),
                "products": _rules(item.expected_products),
            }
            for item in layout.inspect
        ],
        "signatures": [key_entry(str(s.get("keyid", ""))) for s in md.signatures],
    }


def step_keyids(md: Metablock, step: str) -> list[str]:
    """The functionary key ids of ``step`` (empty if the layout has no such step)."""
    for item in md.signed.steps:
        if item.name == step:
            return list(item.pubkeys)
    return []
