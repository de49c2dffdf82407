"""Key generation on an officer's machine, and the key offer carried to the coordinator.

``airlock ceremony keygen`` gives the officer one key per role the plan gives
them — a new encrypted file key, a key already on a PKCS#11 token, or (for a
re-signing ceremony) the key they already hold for that role — and writes a
*key offer*: the public keys, each with a proof of possession. A proof is the
key's signature over::

    {"type": "airlock-proof-of-possession", "ceremony_id", "plan_sha256",
     "nonce", "officer", "role", "keyid"}   (canonical JSON)

so it cannot be replayed into another ceremony, another plan, another role or
for another officer, and shows the officer could open the key (passphrase or
PIN) on the day.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import HSMSigner, Key, Signature
from securesystemslib.signer._utils import compute_default_keyid

from airlock.bundles import __version__
from airlock.bundles.atomic import atomic_write_bytes
from airlock.bundles.canonical import canonical_bytes, pretty_bytes
from airlock.bundles.ceremony_output import sha256_hex
from airlock.bundles.clock import Clock, parse_utc, utc_iso
from airlock.bundles.errors import (
    ConflictError,
    IntegrityError,
    MissingFileError,
    SecretError,
    SignatureError,
    UsageError,
)
from airlock.bundles.keys import KeyRef
from airlock.ceremony.documents._plan import CeremonyPlan
from airlock.ceremony.officer._keydir import (
    AUDIT_DB,
    OfficerKey,
    OfficerKeys,
    algorithm_of,
    sign_with,
    storage_of,
)
from airlock.ceremony.steps import StepLog

OFFER_TYPE = "airlock-key-offer"
PROOF_TYPE = "airlock-proof-of-possession"


@dataclass(frozen=True)
class HsmSlot:
    """A key that already exists on a PKCS#11 token: its token label and key id."""

    token_label: str
    key_id: int

    @classmethod
    def parse(cls, text: str) -> HsmSlot:
        """Parses ``TOKEN_LABEL:KEY_ID`` (the key id in hex, as given to pkcs11-tool's ``--id``).

        Raises:
            UsageError: malformed.
        """
        label, _, key_id = text.rpartition(":")
        try:
            number = int(key_id, 16)
        except ValueError:
            number = -1
        if not label or number < 0:
            raise UsageError(
                f"HSM key {text!r} is not TOKEN_LABEL:KEY_ID",
                hint="e.g. --hsm director-root=officer-carol:02 (the --id given to pkcs11-tool)",
            )
        return cls(label, number)


def proof_payload(plan: CeremonyPlan, officer: str, role: str, keyid: str) -> bytes:
    """The bytes a proof of possession signs (see the module docstring)."""
    return canonical_bytes(
        {
            "type": PROOF_TYPE,
            "ceremony_id": plan.ceremony_id,
            "plan_sha256": plan.sha256,
            "nonce": plan.nonce,
            "officer": officer,
            "role": role,
            "keyid": keyid,
        }
    )


@dataclass(frozen=True)
class OfferedKey:
    """One key of an offer, with its proof of possession."""

    role: str
    ref: KeyRef
    proof: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "role": self.role,
            "name": self.ref.name,
            "uri": self.ref.uri,
            "keyid": self.ref.keyid,
            "public_key": self.ref.public_key.to_dict(),
            "algorithm": algorithm_of(self.ref),
            "storage": storage_of(self.ref),
            "proof": self.proof,
        }


@dataclass(frozen=True)
class KeyOffer:
    """A parsed key offer (``<officer>.offer.json``)."""

    ceremony_id: str
    plan_sha256: str
    officer: str
    created: dt.datetime
    tool_version: str
    keys: tuple[OfferedKey, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "type": OFFER_TYPE,
            "ceremony_id": self.ceremony_id,
            "plan_sha256": self.plan_sha256,
            "officer": self.officer,
            "created": utc_iso(self.created),
            "tool_version": self.tool_version,
            "keys": [key.to_dict() for key in self.keys],
        }

    def key_for(self, role: str) -> KeyRef:
        """The key offered for ``role``."""
        return next(key.ref for key in self.keys if key.role == role)


def key_name(role: str, officer: str) -> str:
    """The name a key has in the ceremony record: ``<role>-<officer>``."""
    return f"{role}-{officer}"


def generate_offer(
    plan: CeremonyPlan,
    officer: str,
    keys_dir: Path,
    out: Path,
    *,
    passphrase: Callable[[str], str],
    pin: Callable[[str], str],
    hsm: Mapping[str, HsmSlot],
    new_roles: frozenset[str],
    clock: Clock,
) -> KeyOffer:
    """Gives ``officer`` a key for each of their roles and writes the key offer to ``out``.

    Args:
        plan: The ceremony plan.
        officer: Who runs this (must be an officer of the plan).
        keys_dir: The officer's key directory (created on first use).
        out: Where to write the offer (must not exist).
        passphrase: Secrets handler for the officer's file keys.
        pin: Secrets handler for the token's user PIN.
        hsm: Roles whose key is on a PKCS#11 token.
        new_roles: Roles that get a new key even if the officer already holds one.
        clock: Source of "now".

    Raises:
        FreshnessError: the plan expired.
        UsageError: not an officer, a role the officer does not hold, wrong algorithm.
        ConflictError: ``out`` exists.
        SecretError: wrong passphrase or PIN (nothing is kept).
    """
    with StepLog(keys_dir, AUDIT_DB, clock) as steps:
        details = {"ceremony_id": plan.ceremony_id, "plan_sha256": plan.sha256}
        with steps.step("ceremony.keygen", officer, details) as audit:
            offer = _generate(plan, officer, keys_dir, out, passphrase, pin, hsm, new_roles, clock)
            audit["offer_sha256"] = sha256_hex(out.read_bytes())
            audit["keys"] = [
                {"role": k.role, "keyid": k.ref.keyid, "storage": storage_of(k.ref)}
                for k in offer.keys
            ]
    return offer


def _generate(
    plan: CeremonyPlan,
    officer: str,
    keys_dir: Path,
    out: Path,
    passphrase: Callable[[str], str],
    pin: Callable[[str], str],
    hsm: Mapping[str, HsmSlot],
    new_roles: frozenset[str],
    clock: Clock,
) -> KeyOffer:
    now = clock.now()
    plan.check_valid(now)
    plan.check_officer(officer)
    roles = plan.roles_of(officer)
    strangers = sorted((set(hsm) | new_roles) - set(roles))
    if strangers:
        raise UsageError(
            f"officer {officer} holds no key for {', '.join(strangers)} in this plan",
            hint=f"{officer}'s roles are: {', '.join(roles)}",
        )
    if out.exists():
        raise ConflictError(
            f"{out} already exists", hint="move the old offer away or choose another --out"
        )
    officer_keys = OfficerKeys.open(keys_dir, officer, create=True)
    store = officer_keys.store(passphrase)
    created: list[Path] = []
    offered: list[OfferedKey] = []
    added: list[OfficerKey] = []
    try:
        for role in roles:
            algorithm = plan.roles[role].algorithm
            existing = officer_keys.latest(role)
            if role in hsm:
                ref = _import_hsm_key(role, officer, hsm[role], pin)
                signer_store = officer_keys.store(pin)
            elif existing is not None and role not in new_roles:
                ref = KeyRef(key_name(role, officer), existing.ref.uri, existing.ref.public_key)
                signer_store = store if storage_of(ref) == "file" else officer_keys.store(pin)
            else:
                if algorithm == "ecdsa-p384":
                    raise UsageError(
                        f"role {role} asks for ecdsa-p384, which only an HSM key can be",
                        hint=f"pass --hsm {role}=TOKEN:KEY_ID, or change the plan's algorithm",
                    )
                relative = officer_keys.next_key_path(role)
                ref = store.create_file_key(
                    key_name(role, officer), relative, algorithm, passphrase("passphrase")
                )
                created.append(keys_dir / relative)
                signer_store = store
            if algorithm_of(ref) != algorithm:
                raise UsageError(
                    f"the {role} key is {algorithm_of(ref)}, but the plan asks for {algorithm}",
                    hint=f"make a new key with --new-key {role}, or use a token key of that type",
                )
            signer = signer_store.signer(ref)
            signature = sign_with(signer, proof_payload(plan, officer, role, ref.keyid), ref.name)
            offered.append(OfferedKey(role, ref, signature.signature))
            if existing is None or existing.ref.keyid != ref.keyid:
                added.append(OfficerKey(role, ref))
        offer = KeyOffer(
            ceremony_id=plan.ceremony_id,
            plan_sha256=plan.sha256,
            officer=officer,
            created=now,
            tool_version=__version__,
            keys=tuple(offered),
        )
        officer_keys.keys.extend(added)
        officer_keys.save()
        atomic_write_bytes(out, pretty_bytes(offer.to_dict()))
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        raise
    return offer


def _import_hsm_key(role: str, officer: str, slot: HsmSlot, pin: Callable[[str], str]) -> KeyRef:
    try:
        uri, public_key = HSMSigner.import_(slot.key_id, slot.token_label, pin)
    except Exception as exc:
        raise SecretError(
            f"cannot read key {slot.key_id:02x} on token {slot.token_label!r} "
            f"({type(exc).__name__})",
            hint="check that the token is inserted, PYKCS11LIB names its PKCS#11 module, "
            "the label and key id are right, and the PIN",
        ) from None
    return KeyRef(key_name(role, officer), uri, public_key)


def read_offer(path: Path) -> tuple[KeyOffer, bytes]:
    """Reads an offer file (unverified) and returns it with its bytes.

    Raises:
        NotFoundError: no such file.
        UsageError: not a key offer.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise MissingFileError(f"no key offer at {path}") from None
    try:
        doc = json.loads(data)
        if doc.get("type") != OFFER_TYPE:
            raise ValueError(f"type is {doc.get('type')!r}")
        keys = []
        for item in doc["keys"]:
            key = Key.from_dict(str(item["keyid"]), dict(item["public_key"]))
            ref = KeyRef(str(item["name"]), str(item["uri"]), key)
            keys.append(OfferedKey(str(item["role"]), ref, str(item["proof"])))
        offer = KeyOffer(
            ceremony_id=str(doc["ceremony_id"]),
            plan_sha256=str(doc["plan_sha256"]),
            officer=str(doc["officer"]),
            created=parse_utc(doc["created"]),
            tool_version=str(doc["tool_version"]),
            keys=tuple(keys),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(
            f"{path} is not a key offer ({type(exc).__name__}: {exc})",
            hint="carry the file `airlock ceremony keygen` wrote, unchanged",
        ) from None
    return offer, data


def verify_offer(plan: CeremonyPlan, offer: KeyOffer, source: str) -> None:
    """Checks an offer belongs to this plan, covers the officer's roles, and every proof.

    Raises:
        IntegrityError: made for another ceremony or plan.
        UsageError: not an officer, wrong roles or algorithm.
        SignatureError: a key id does not match its key, or a proof does not verify.
    """
    if offer.ceremony_id != plan.ceremony_id or offer.plan_sha256 != plan.sha256:
        raise IntegrityError(
            f"{source} was made for ceremony {offer.ceremony_id} with plan "
            f"{offer.plan_sha256[:16]}…, not this plan ({plan.ceremony_id}, {plan.sha256[:16]}…)",
            hint="the officer must run keygen again with the coordinator's plan file",
        )
    plan.check_officer(offer.officer)
    roles = [key.role for key in offer.keys]
    if sorted(roles) != sorted(plan.roles_of(offer.officer)):
        raise UsageError(
            f"{source} offers keys for {', '.join(roles) or 'no role'}; the plan gives "
            f"{offer.officer} {', '.join(plan.roles_of(offer.officer))}",
            hint="the officer must run keygen again with the coordinator's plan file",
        )
    for key in offer.keys:
        public = key.ref.public_key
        computed = compute_default_keyid(public.keytype, public.scheme, public.keyval)
        if computed != key.ref.keyid:
            raise SignatureError(
                f"{source}: the key id of the {key.role} key does not match its public key",
                hint="the offer was altered; ask the officer for a fresh one",
            )
        wanted = plan.roles[key.role].algorithm
        if algorithm_of(key.ref) != wanted:
            raise UsageError(
                f"{source}: the {key.role} key is {algorithm_of(key.ref)}, the plan asks {wanted}"
            )
        payload = proof_payload(plan, offer.officer, key.role, key.ref.keyid)
        try:
            public.verify_signature(Signature(key.ref.keyid, key.proof), payload)
        except Exception:
            raise SignatureError(
                f"{source}: the proof of possession of {offer.officer}'s {key.role} key "
                f"{key.ref.keyid[:16]}… does not verify",
                hint="the offer was altered or made for another ceremony; the officer must "
                "run keygen again",
            ) from None
