"""``airlock audit verify-receipt``: check a signed import receipt offline and say what it attests.

The verifying key is the site's Ed25519 key from the ``site-identity.json`` the
hub registered (``--key``), or from a spoke home (``--home``). No database and
no passphrase are needed: only the receipt and the public key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from securesystemslib.signer import Key

from airlock.bundles.audit._receipt import ImportReceipt, verify_receipt
from airlock.bundles.cli._audit_options import read_text
from airlock.bundles.cli._toolkit import emit_json, json_option
from airlock.bundles.errors import MediaError, MissingFileError, UsageError
from airlock.bundles.models import SiteIdentity

IDENTITY_FILE = "site-identity.json"
"""A spoke home's public identity (``airlock.spoke.site.IDENTITY_FILE``)."""


def site_key(path: Path) -> tuple[Key, str]:
    """The signing key and site id of a ``site-identity.json``.

    Raises:
        MissingFileError: no such file.
        MediaError: not a site identity.
    """
    text = read_text(path, "site identity")
    try:
        identity = SiteIdentity.from_dict(json.loads(text))
        key = Key.from_dict(identity.signing_keyid, dict(identity.signing_key))
    except (ValueError, TypeError, KeyError, UsageError) as exc:
        raise MediaError(
            f"{path} is not a site identity ({exc})",
            hint="give the site-identity.json the site wrote at `airlock spoke init` "
            "(the one the hub registered)",
        ) from None
    return key, identity.site_id


@click.command("verify-receipt")
@click.argument("receipt_path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--key",
    "identity_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The site's site-identity.json (as registered at the hub).",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="A spoke home: its site-identity.json is used.",
)
@json_option()
def verify_receipt_command(
    receipt_path: Path, identity_path: Path | None, home: Path | None, as_json: bool
) -> None:
    """Verify a signed import receipt and print what it attests.

    The receipt (from `airlock spoke import --receipt FILE`, or the `receipt`
    of a `spoke.import` audit entry) must be signed by the site's key. Exits 0
    when it verifies; 11 when it was altered or another key signed it; 15 when it
    names another site than the key's; 5 when the file is not a receipt.
    """
    if (identity_path is None) == (home is None):
        raise UsageError(
            "give the site's key: either --key site-identity.json or --home SPOKE_HOME",
            hint="the site identity is the file the hub registered for the site",
        )
    path = identity_path if identity_path is not None else Path(str(home)) / IDENTITY_FILE
    key, site_id = site_key(path)
    try:
        data = Path(receipt_path).read_bytes()
    except FileNotFoundError:
        raise MissingFileError(f"receipt {receipt_path} does not exist") from None
    except OSError as exc:
        raise MediaError(f"receipt {receipt_path} is unreadable ({exc.strerror})") from None
    receipt = verify_receipt(data, key, site_id)
    if as_json:
        emit_json({"ok": True, "signed_by": key.keyid, **_attested(receipt)}, sort_keys=False)
        return
    _print(receipt, key)


def _attested(receipt: ImportReceipt) -> dict[str, Any]:
    doc = receipt.to_dict()
    doc.pop("format")
    return {"summary": receipt.summary(), "receipt": doc}


def _print(receipt: ImportReceipt, key: Key) -> None:
    summary = receipt.summary()
    click.secho(
        f"receipt verified: signed by site {receipt.site_id}'s key {key.keyid[:16]}…", fg="green"
    )
    lines = [
        (
            "bundle",
            f"{receipt.bundle_id} ({receipt.kind}, sequence {receipt.sequence}, "
            f"format {receipt.format_version})",
        ),
        ("imported at", summary["imported_at"]),
        ("by Airlock", receipt.airlock_version),
        ("envelope SHA-256", receipt.envelope_sha256),
        ("envelope keys", ", ".join(k[:16] + "…" for k in receipt.envelope_keyids) or "-"),
        (
            "trusted roots",
            f"Director root v{receipt.director_root_version}, "
            f"Image root v{receipt.image_root_version}",
        ),
        ("volumes read", _names(receipt.volumes["read"])),
        ("rebuilt from parity", _names(receipt.volumes["rebuilt"])),
        ("resumed", _names(receipt.volumes["resumed"])),
        (
            "files checked",
            f"{summary['files']} ({summary['bytes']} bytes, {summary['chunks']} chunks "
            "against signed chunk indexes)"
            if receipt.format_version >= 2
            else f"{summary['files']} ({summary['bytes']} bytes, each against its signed SHA-256)",
        ),
        ("staged", ", ".join(receipt.staged) or "nothing new"),
    ]
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        click.echo(f"  {label:<{width}}  {value}")
    for item in receipt.files:
        index = f"  index {item.index_sha256}, {item.chunks} chunks" if item.index_sha256 else ""
        click.echo(f"    {item.sha256}  {item.length} bytes{index}")


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(names) if names else "-"
