"""The hub's side of the return path: its age identity, its witness key, and what it tells sites.

Sites send metrics back encrypted to the hub and carrying their audit
checkpoint; the hub witnesses each site's log. This module holds the keys for
that and computes the Director field (``x-airlock-return``,
:class:`~airlock.bundles.metrics._model.ReturnPath`) every export carries:

* the hub's **age X25519 identity**, sealed with the hub passphrase exactly
  like a spoke seals its own (:mod:`airlock.bundles.keys._sealed`) at
  ``keys/hub-age-identity.sealed``; its recipient is published next to
  ``airlock.toml`` as ``hub-recipient.txt`` for operators (and read by exports,
  so that they need not unseal the identity). The sealed file is the source of
  truth: a missing recipient file is written again from it.
* the **witness key**: the hub's audit checkpoint key
  (:mod:`airlock.bundles.audit._checkpoint_store`: ``online-keys/audit-checkpoint.pem``
  and its published ``audit-checkpoint-key.json``), named by its origin
  ``airlock/hub/<ctx.id or host>``; it cosigns each site checkpoint the hub has
  checked (:mod:`airlock.bundles.audit._cosignature`).
* the **acknowledgement**: the site's newest imported metrics bundle (its
  sequence and its checkpoint as the hub cosigned it).

Both keys are made on first use — by the first export, which must name them —
in memory, and *staged* into the export's :class:`~airlock.hub.repos._tufmeta.StagedWrites`:
they are written when the export commits, under the home lock, and a refused
export leaves no key behind. :func:`check_staged` refuses the commit when
another command made the keys after the export was planned (the bundle would
name keys the hub does not keep). A wrong passphrase raises
:class:`SecretError` and nothing is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
from securesystemslib.signer import Key, Signer
from sqlmodel import Session, col, select

from airlock.bundles import audit as checkpoint_store
from airlock.bundles.audit import CheckpointKey
from airlock.bundles.canonical import pretty_bytes
from airlock.bundles.errors import ConflictError, MediaError, NotFoundError, SecretError
from airlock.bundles.keys import (
    FILE_SCHEME,
    ONLINE_KDF_ITERATIONS,
    KeyRef,
    encrypted_pem,
    generate_signer,
    public_key_pem,
    seal,
    unseal,
)
from airlock.bundles.metrics import ReturnPath
from airlock.hub.context._context import HubContext
from airlock.hub.repos._tufmeta import StagedWrites
from airlock.hub.store._fleet_tables import HubMetricsImport
from airlock.hub.store._home import PASSPHRASE_ENV

AGE_IDENTITY_FILE = "keys/hub-age-identity.sealed"
RECIPIENT_FILE = "hub-recipient.txt"
WITNESS_KEY_NAME = "audit-checkpoint"
WHAT = "the hub's age identity"
KEY_FILES = (
    AGE_IDENTITY_FILE,
    checkpoint_store.HUB_KEY_PATH,
    checkpoint_store.KEY_FILE,
    checkpoint_store.KEY_PEM,
)
"""Files a first export may stage; they must not appear between its plan and its commit."""


@dataclass(frozen=True)
class Witness:
    """The hub as a witness of site logs: its name (checkpoint origin) and public key."""

    name: str
    key: Key

    def key_dict(self) -> dict[str, Any]:
        """The public key as a securesystemslib dict with its ``keyid`` (the Director form)."""
        return {**self.key.to_dict(), "keyid": self.key.keyid}


def _no_keys_yet() -> NotFoundError:
    return NotFoundError(
        "this hub has no return-path keys yet",
        hint="export a bundle for a site first (it makes the keys and tells the site)",
    )


def witness(ctx: HubContext, writes: StagedWrites | None = None) -> Witness:
    """The hub's witness key; with ``writes``, made and staged there if it does not exist.

    Raises:
        NotFoundError: no witness key yet, and no ``writes`` to stage one into.
        SecretError: the key must be made and the passphrase is missing or too short.
    """
    key = checkpoint_store.read_checkpoint_key(ctx.home.root)
    if key is None:
        if writes is None:
            raise _no_keys_yet()
        key = _stage_witness(ctx, writes)
    return Witness(key.origin, key.ref.public_key)


def _stage_witness(ctx: HubContext, writes: StagedWrites) -> CheckpointKey:
    """A new checkpoint key, as :func:`checkpoint_store.home_checkpoint_key` makes it, staged."""
    signer = generate_signer("ed25519")
    path = checkpoint_store.HUB_KEY_PATH
    ref = KeyRef(WITNESS_KEY_NAME, f"{FILE_SCHEME}:{path}", signer.public_key)
    key = CheckpointKey(checkpoint_store.home_origin(ctx.config), ref)
    home = ctx.home.root
    writes.put(home / path, encrypted_pem(signer, _passphrase(ctx), ONLINE_KDF_ITERATIONS), 0o600)
    writes.put(home / checkpoint_store.KEY_PEM, public_key_pem(ref.public_key))
    writes.put(home / checkpoint_store.KEY_FILE, pretty_bytes(key.to_dict()))
    return key


def witness_signer(ctx: HubContext) -> Signer:
    """The signer of the witness key (opens it with the hub passphrase).

    Raises:
        NotFoundError: no witness key yet.
        SecretError: wrong or missing passphrase.
    """
    key = checkpoint_store.read_checkpoint_key(ctx.home.root)
    if key is None:
        raise _no_keys_yet()
    return checkpoint_store.checkpoint_signer(ctx.config, key, ctx.signers.secrets)


def _passphrase(ctx: HubContext) -> str:
    passphrase = ctx.signers.secrets("passphrase")
    if not passphrase:
        raise SecretError(f"the hub passphrase is needed for {WHAT}", hint=f"set {PASSPHRASE_ENV}")
    return passphrase


def _unseal(ctx: HubContext) -> Any:
    secret = unseal(
        (ctx.home.root / AGE_IDENTITY_FILE).read_bytes(),
        _passphrase(ctx),
        WHAT,
        hint=f"give the hub passphrase ({PASSPHRASE_ENV})",
    )
    try:
        return pyrage.x25519.Identity.from_str(secret.decode("ascii").strip())
    except Exception:
        raise MediaError(
            f"{WHAT} is not an age X25519 identity",
            hint=f"restore {AGE_IDENTITY_FILE} from the hub home's backup",
        ) from None


def _read_recipient(home: Path) -> str | None:
    try:
        text = (home / RECIPIENT_FILE).read_text(encoding="ascii").strip()
        pyrage.x25519.Recipient.from_str(text)
    except Exception:
        return None
    return text


def hub_recipient(ctx: HubContext, writes: StagedWrites | None = None) -> str:
    """The hub's age recipient; with ``writes``, a new identity is made and staged there.

    Raises:
        NotFoundError: no identity yet, and no ``writes`` to stage one into.
        SecretError: the identity must be made (or its recipient file written
            again from it) and the passphrase is missing or wrong.
    """
    home = ctx.home.root
    if (home / AGE_IDENTITY_FILE).is_file():
        published = _read_recipient(home)
        if published is not None:
            return published
        recipient = str(_unseal(ctx).to_public())
    elif writes is None:
        raise _no_keys_yet()
    else:
        identity = pyrage.x25519.Identity.generate()
        sealed = seal(str(identity).encode("ascii"), _passphrase(ctx))
        writes.put(home / AGE_IDENTITY_FILE, sealed, 0o600)
        recipient = str(identity.to_public())
    if writes is not None:
        writes.put(home / RECIPIENT_FILE, f"{recipient}\n".encode("ascii"))
    return recipient


def check_staged(ctx: HubContext, writes: StagedWrites) -> None:
    """Refuses to write keys staged by a plan when another command made them since.

    Raises:
        ConflictError: a staged key file exists now.
    """
    home = ctx.home.root
    made = [name for name in KEY_FILES if home / name in writes.paths and (home / name).exists()]
    if made:
        raise ConflictError(
            f"the hub's return-path keys were made since this export was planned ({made[0]})",
            hint="plan the export again",
        )


def hub_identity(ctx: HubContext) -> Any:
    """The hub's age identity, unsealed (never made here).

    Before the identity exists no site can have encrypted anything to the hub:
    a fresh identity that nothing was encrypted to is returned, so decryption
    fails as it should (and nothing is created by a refused import).

    Raises:
        SecretError: wrong or missing passphrase.
        MediaError: the sealed file is damaged.
    """
    if not (ctx.home.root / AGE_IDENTITY_FILE).is_file():
        return pyrage.x25519.Identity.generate()
    return _unseal(ctx)


def newest_import(session: Session, site_id: str) -> HubMetricsImport | None:
    """The site's newest imported metrics bundle (highest sequence), or None."""
    query = (
        select(HubMetricsImport)
        .where(HubMetricsImport.site_id == site_id)
        .order_by(col(HubMetricsImport.sequence).desc())
        .limit(1)
    )
    return session.exec(query).first()


def return_path(
    ctx: HubContext, session: Session, site_id: str, writes: StagedWrites | None = None
) -> ReturnPath:
    """What the hub tells ``site_id`` in its Director targets (``x-airlock-return``).

    With ``writes`` (an export's), keys that do not exist yet are made and
    staged there (see the module docstring).

    Raises:
        NotFoundError: the keys do not exist yet and there is no ``writes``.
        SecretError: a key must be made and the passphrase is missing or wrong.
    """
    recipient = hub_recipient(ctx, writes)
    seen = witness(ctx, writes)
    newest = newest_import(session, site_id)
    return ReturnPath(
        hub_recipient=recipient,
        witness_name=seen.name,
        witness_key=seen.key_dict(),
        acknowledged_sequence=newest.sequence if newest else 0,
        acknowledged_note=newest.cosigned_note if newest else "",
    )
