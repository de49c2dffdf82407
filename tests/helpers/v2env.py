"""What format-2 import tests share: a multi-volume bundle, and what a refusal must leave.

:func:`big_bundle` assigns a 6 MB model (six chunks) to ``plant-7`` and writes the
hub's plan as a format-2 bundle of three or more data volumes (and parity on
request). :func:`assert_v2_refused` is the format-2 counterpart of
:func:`helpers.spokeenv.assert_refused_unchanged`: nothing staged (no row of the
state tables, no file of the blob store changed), exactly one audit entry, an
intact audit chain, and the resumable state kept or dropped as the refusal
requires.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path
from typing import Any

from airlock.bundles.agestream import AgeReader, AgeWriter, parse_identity
from airlock.bundles.audit import AuditLog, verify_engine
from airlock.bundles.errors import AirlockError, VerificationError
from airlock.bundles.keys import unseal
from airlock.bundles.models import VolumeRecord
from airlock.bundles.volumes import minimum_volume_size
from airlock.hub.context import HubContext
from airlock.hub.export import assign, commit_export, plan_export
from airlock.hub.intake import add_model
from airlock.spoke.importing import list_pending
from airlock.spoke.site import SpokeHome
from helpers.onnx_models import make_onnx_model
from helpers.spokeenv import SITE_ID, SITE_PASSPHRASE, dump_rows, sha256_file
from helpers.v2craft import V2Bundle, write_v2_bundle

BIG_WIDTH = 1_500_000
"""6,000,000 bytes of weights: six chunks of 1 MiB."""


def big_bundle(
    hub: HubContext,
    out: Path,
    models: Path,
    *,
    parity: int = 0,
    chunks_per_volume: int = 2,
    name: str = "big",
    seed: int = 0,
    commit: bool = False,
    **options: Any,
) -> V2Bundle:
    """Assigns model ``name@1`` (6 MB) to plant-7 and writes the hub's next bundle as volumes.

    With ``commit``, the hub also records the export (its sequence advances; a
    format-1 copy of the same bundle goes to ``<out>-v1``).
    """
    model = make_onnx_model(
        models / name / "model.onnx", external_data=True, width=BIG_WIDTH, seed=seed
    )
    add_model(hub, name, "1", model.parent)
    assign(hub, SITE_ID, name, "1")
    plan = plan_export(hub, SITE_ID)
    size = minimum_volume_size(plan.recipients) * chunks_per_volume
    bundle = write_v2_bundle(hub, plan, out, volume_size=size, parity=parity, **options)
    if commit:
        commit_export(hub, plan, out.with_name(f"{out.name}-v1"))
    return bundle


def state_of(home: SpokeHome) -> list[str]:
    """The bundle ids of the pending imports."""
    found, _broken = list_pending(home)
    return [p.bundle_id for p in found]


def blob_store(home: SpokeHome) -> dict[str, str]:
    """Every file of the blob store: name → SHA-256."""
    if not home.blob_dir.is_dir():
        return {}
    return {p.name: sha256_file(p) for p in sorted(home.blob_dir.iterdir())}


def snapshot(home: SpokeHome) -> tuple[Any, dict[str, str], int]:
    """Rows of the state tables, the blob store, and the audit log's length."""
    return dump_rows(home), blob_store(home), AuditLog(home.engine, "spoke").count()


def assert_v2_refused(
    home: SpokeHome,
    before: tuple[Any, dict[str, str], int],
    error: AirlockError,
    expected: type[AirlockError],
    *,
    action: str = "spoke.import",
    state: str,
) -> dict[str, Any]:
    """A refused format-2 import: nothing staged, one audit entry, the state ``kept``/``none``.

    The entry is ``refused`` for a verification failure or an incomplete import
    (``spoke.import.partial``), ``failure`` for anything else (bad media, usage).

    Returns:
        The audit entry's details.
    """
    rows, blobs, entries = before
    assert type(error) is expected, f"expected {expected.__name__}, got {error!r}"
    assert error.message and error.hint
    assert dump_rows(home) == rows, "a refused import changed the spoke's state"
    assert blob_store(home) == blobs, "a refused import staged files"
    log = AuditLog(home.engine, "spoke").entries()
    assert len(log) == entries + 1, [(e.action, e.outcome) for e in log[entries:]]
    refused = issubclass(expected, VerificationError) or action != "spoke.import"
    assert (log[-1].action, log[-1].outcome) == (action, "refused" if refused else "failure")
    details: dict[str, Any] = json.loads(log[-1].details)
    assert details["error"] == expected.__name__ and details["message"] == error.message
    assert verify_engine(home.engine).ok
    pending = state_of(home)
    if state == "kept":
        assert len(pending) == 1 and details["state"] == "kept"
    else:
        assert pending == [], f"a refused import left state behind: {pending}"
    return details


# --- editing volumes as an attacker holding only the site's public key could -------------------


def site_identity(home: SpokeHome) -> bytes:
    """The site's raw age identity (the test knows the passphrase)."""
    sealed = (home.path / "keys" / "site-age-identity.sealed").read_bytes()
    secret = unseal(sealed, SITE_PASSPHRASE, "the site's age identity", hint="")
    return parse_identity(secret.decode("ascii").strip())


def volume_entries(path: Path, identity: bytes) -> list[tuple[str, bytes]]:
    """The entries (name, data) of a data volume's plaintext, in order."""
    with path.open("rb") as handle:
        plain = AgeReader(handle, [identity]).read()
    import io

    with tarfile.open(fileobj=io.BytesIO(plain), mode="r:") as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]


def write_volume(path: Path, entries: list[tuple[str, bytes]], recipient: str) -> None:
    """A data volume of exactly ``entries`` (ustar, as the writer makes them), sealed with age."""
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    with path.open("wb") as out:
        writer = AgeWriter(out, [recipient])
        writer.write(buf.getvalue())
        writer.close()


def chunk_sha(data: bytes) -> str:
    """SHA-256 hex of a chunk."""
    return hashlib.sha256(data).hexdigest()


def label(record: VolumeRecord) -> str:
    """How refusals name a volume."""
    return record.label
