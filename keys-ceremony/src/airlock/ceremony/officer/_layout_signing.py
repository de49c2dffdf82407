"""An officer signs the in-toto layout on their offline machine with their layout key.

``airlock ceremony sign-layout`` reads the layout the release engineer drafted
(``airlock hub layout draft``) — or one already signed by other officers —
once, shows a readable summary (steps, functionaries, artifact rules, expiry,
the *content* SHA-256 that stays the same as signatures are added), and only
after the officer confirms adds a signature by the officer's newest
``layout`` key to *those same bytes*, writing the result to a new file. A
threshold of the officers' layout keys (anchored in the Image root by the key
ceremony) must sign before ``airlock hub layout set`` accepts it.

The step is audited in the officer's key directory (``ceremony.sign-layout``),
refusals too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airlock.bundles import intoto as layouts
from airlock.bundles.atomic import atomic_write_bytes
from airlock.bundles.ceremony_output import sha256_hex
from airlock.bundles.clock import Clock
from airlock.bundles.errors import (
    ConflictError,
    FreshnessError,
    MissingFileError,
    UsageError,
)
from airlock.ceremony.documents._plan import LAYOUT, load_plan
from airlock.ceremony.officer._keydir import AUDIT_DB, OfficerKeys, sign_with
from airlock.ceremony.steps import StepLog

SIGN_LAYOUT_ACTION = "ceremony.sign-layout"


@dataclass(frozen=True)
class LayoutSignature:
    """What ``sign-layout`` did."""

    out: Path
    keyid: str
    content_sha256: str
    out_sha256: str
    signatures: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "out": str(self.out),
            "keyid": self.keyid,
            "content_sha256": self.content_sha256,
            "out_sha256": self.out_sha256,
            "signatures": self.signatures,
        }


def sign_layout(
    layout_path: Path,
    officer: str,
    keys_dir: Path,
    out: Path,
    *,
    secrets: Callable[[str], str],
    confirm: Callable[[dict[str, Any]], bool],
    clock: Clock,
    plan_path: Path | None = None,
) -> LayoutSignature:
    """Reviews and signs a layout with the officer's layout key; writes it to ``out``.

    Args:
        layout_path: The layout to sign (unsigned, or signed by other officers).
        officer: Who signs.
        keys_dir: The officer's key directory.
        out: The signed layout to write (must not exist).
        secrets: Gives the passphrase (``"passphrase"``) or token PIN (``"pin"``).
        confirm: Shown the summary; returns True to sign.
        clock: Source of "now".
        plan_path: Optionally, the plan of the ceremony that made the layout keys:
            the officer must hold a layout key in it.

    Raises:
        NotFoundError: no key directory, layout or plan there.
        AttestationError: the file is not an in-toto layout.
        FreshnessError: the layout has already expired.
        UsageError: the officer has no layout key (or none in the plan), or declined.
        ConflictError: ``out`` exists.
        SecretError: wrong passphrase or PIN (nothing is written).
    """
    OfficerKeys.require(keys_dir)
    with (
        StepLog(keys_dir, AUDIT_DB, clock) as steps,
        steps.step(SIGN_LAYOUT_ACTION, officer, {"layout": str(layout_path)}) as audit,
    ):
        officer_keys = OfficerKeys.open(keys_dir, officer)
        try:
            data = Path(layout_path).read_bytes()  # read once: shown and signed
        except FileNotFoundError:
            raise MissingFileError(
                f"no layout at {layout_path}",
                hint="copy the file `airlock hub layout draft` wrote from the medium",
            ) from None
        audit["layout_sha256"] = sha256_hex(data)
        md = layouts.parse_layout(data, str(layout_path))
        audit["content_sha256"] = layouts.content_sha256(md)
        if plan_path is not None:
            plan = load_plan(plan_path)
            if officer not in plan.roles[LAYOUT].officers:
                raise UsageError(
                    f"{officer} holds no layout key in ceremony {plan.ceremony_id}",
                    hint=f"the layout officers are {', '.join(plan.roles[LAYOUT].officers)}",
                )
        key = officer_keys.latest(LAYOUT)
        if key is None:
            raise UsageError(
                f"{officer} has no layout key in {keys_dir}",
                hint="only officers who made a layout key in a key ceremony can sign layouts",
            )
        audit["keyid"] = key.ref.keyid
        if layouts.layout_expires(md) <= clock.now():
            raise FreshnessError(
                f"the layout expired at {layouts.layout_expires(md):%Y-%m-%d %H:%M}Z",
                hint="ask the release engineer for a new draft",
            )
        if Path(out).exists():
            raise ConflictError(f"{out} already exists", hint="choose another --out")
        names = {key.ref.keyid: f"{officer} (layout)"}
        summary = layouts.layout_summary(md, data, names) | {
            "signing_key": {
                "keyid": key.ref.keyid,
                "fingerprint": layouts.fingerprint(key.ref.keyid),
                "officer": officer,
            }
        }
        if not confirm(summary):
            raise UsageError(
                "not signed: the officer did not confirm the layout",
                hint="if something on screen was wrong, tell the release engineer",
            )
        signer = officer_keys.store(secrets).signer(key.ref)
        signature = sign_with(signer, md.signed.signable_bytes, key.ref.name)
        md.signatures = [s for s in md.signatures if s.get("keyid") != key.ref.keyid]
        md.signatures.append(signature.to_dict())
        signed = layouts.layout_bytes(md)
        atomic_write_bytes(Path(out), signed)
        result = LayoutSignature(
            out=Path(out),
            keyid=key.ref.keyid,
            content_sha256=layouts.content_sha256(md),
            out_sha256=sha256_hex(signed),
            signatures=len(md.signatures),
        )
        audit.update(result.to_dict())
    return result
