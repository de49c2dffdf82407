"""The hub's side of in-toto attestations: its package key, the current layout, attaching links.

Files in the hub home::

    attestations/package-key.pem    the hub's `package` functionary key (Ed25519,
                                    encrypted with the hub passphrase), made at first use
    attestations/package-key.json   its key reference (URI and public key)
    attestations/root.layout        the current layout, signed by a threshold of the
                                    officers' layout keys

The flow (docs/release-engineer.md, "Supply-chain attestations"):

1. ``airlock hub layout draft`` — an unsigned layout (see
   :mod:`airlock.bundles.intoto._layout`) naming the pipeline's functionary keys and the
   hub's package key.
2. ``airlock ceremony sign-layout`` — each officer signs it offline with their
   layout key.
3. ``airlock hub layout set FILE`` — a threshold of the layout keys the Image
   root anchors must have signed it, and it may not outlive the anchored
   layout role; it becomes the current layout.
4. ``airlock hub model add … --links DIR`` — :func:`attach` adds the current
   layout (``root.layout``, kind ``layout``), the pipeline's links and a
   ``package`` link the hub records over the version's model files (kind
   ``link``) to the version's targets, after verifying the whole chain as a site will.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from in_toto.runlib import in_toto_run
from securesystemslib.signer import Signer

from airlock.bundles import intoto as attest
from airlock.bundles import intoto as layouts
from airlock.bundles import tuf as tufrepo
from airlock.bundles.canonical import pretty_bytes
from airlock.bundles.errors import (
    ConflictError,
    MediaError,
    MissingFileError,
    SecretError,
    TrustError,
    UsageError,
)
from airlock.bundles.keys import ONLINE_KDF_ITERATIONS, KeyRef, encrypted_pem, generate_signer
from airlock.bundles.models import ModelFile
from airlock.hub.context._context import HubContext, load_image_repo
from airlock.hub.context._operation import Operation, operation
from airlock.hub.intake._staging import StagedModel
from airlock.hub.repos._blobstore import copy_hashing
from airlock.hub.repos._signing import check_signer_matches

ATTEST_DIR = "attestations"
PACKAGE_KEY_FILE = f"{ATTEST_DIR}/package-key.pem"
PACKAGE_REF_FILE = f"{ATTEST_DIR}/package-key.json"
LAYOUT_FILE = f"{ATTEST_DIR}/{layouts.LAYOUT_TARGET}"
PACKAGE_KEY_NAME = "intoto-package"


@dataclass(frozen=True)
class LayoutInfo:
    """The hub's current layout, for command output."""

    summary: dict[str, Any]
    signed_by: list[str]
    changed: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"changed": self.changed, "signed_by": self.signed_by, **self.summary}


def anchor(ctx: HubContext) -> attest.Anchor:
    """The layout keys the hub's newest Image root anchors.

    Raises:
        TrustError: the root anchors none (a minimal lab ceremony, or an old root).
    """
    keys, threshold, expires = tufrepo.layout_keys(load_image_repo(ctx).root.signed)
    return attest.Anchor(keys, threshold, expires)


def package_key_ref(ctx: HubContext) -> KeyRef | None:
    """The hub's package key, if it was made already."""
    path = ctx.home.root / PACKAGE_REF_FILE
    if not path.exists():
        return None
    try:
        return KeyRef.from_dict(json.loads(path.read_bytes()))
    except (ValueError, UsageError) as exc:
        raise MediaError(f"{path} is not a key reference ({exc})") from None


def _ensure_package_key(ctx: HubContext, op: Operation) -> KeyRef:
    """The package key; made (and staged for writing) on first use."""
    ref = package_key_ref(ctx)
    if ref is not None:
        return ref
    signer = generate_signer("ed25519")
    passphrase = ctx.signers.secrets("passphrase")
    if not passphrase:
        raise SecretError("no hub passphrase given")
    pem = encrypted_pem(signer, passphrase, ONLINE_KDF_ITERATIONS)
    ref = KeyRef(PACKAGE_KEY_NAME, f"airlock-file:{PACKAGE_KEY_FILE}", signer.public_key)
    op.writes.put(ctx.home.root / PACKAGE_KEY_FILE, pem, mode=0o600)
    op.writes.put(ctx.home.root / PACKAGE_REF_FILE, pretty_bytes(ref.to_dict()))
    op.details["new_package_keyid"] = ref.keyid
    return ref


def package_signer(ctx: HubContext, ref: KeyRef) -> Signer:
    """Opens the package key with the hub passphrase."""
    signer = ctx.signers.store.signer(ref)
    check_signer_matches(signer, ref.public_key, PACKAGE_KEY_NAME)
    return signer


def current_layout(ctx: HubContext) -> bytes | None:
    """The bytes of the current layout, if one was set."""
    path = ctx.home.root / LAYOUT_FILE
    return path.read_bytes() if path.exists() else None


def layout_info(ctx: HubContext) -> LayoutInfo | None:
    """The current layout's summary, if one was set (no passphrase needed)."""
    data = current_layout(ctx)
    if data is None:
        return None
    md = layouts.parse_layout(data, "the hub's current layout")
    signed = sorted(str(s.get("keyid")) for s in md.signatures)
    return LayoutInfo(layouts.layout_summary(md, data, _names(ctx)), signed, changed=False)


def _names(ctx: HubContext) -> dict[str, str]:
    names: dict[str, str] = {}
    ref = package_key_ref(ctx)
    if ref is not None:
        names[ref.keyid] = "hub package key"
    with contextlib.suppress(TrustError):
        names.update({kid: "officers' layout key" for kid in anchor(ctx).keys})
    return names


def _draft(
    ctx: HubContext,
    op: Operation,
    functionaries: Mapping[str, Sequence[Path]],
    expires_days: int,
    out: Path,
) -> LayoutInfo:
    """The body of ``Hub.draft_layout``: writes the unsigned layout to ``out``.

    Raises:
        UsageError: a step without functionary, a bad key file, the hub's own
            key as a pipeline functionary, an expiry past the layout role's.
        ConflictError: ``out`` exists.
        TrustError: the Image root anchors no layout keys.
    """
    out = Path(out)
    if out.exists():
        raise ConflictError(f"{out} already exists", hint="choose another --out")
    if expires_days < 1:
        raise UsageError("--expires-days must be at least 1")
    layout_anchor = anchor(ctx)
    expires = tufrepo.expiry_from(ctx.clock.now(), expires_days)
    if expires > layout_anchor.expires:
        longest = (layout_anchor.expires - ctx.clock.now()).days
        raise UsageError(
            f"a layout expiring in {expires_days} days would outlive the officers' layout "
            f"role ({layout_anchor.expires:%Y-%m-%d})",
            hint=f"use --expires-days {longest} or fewer, or renew the layout role first",
        )
    ref = _ensure_package_key(ctx, op)
    keys = {
        step: [layouts.read_public_key_pem(Path(p)) for p in paths]
        for step, paths in functionaries.items()
    }
    for step, step_keys in keys.items():
        if any(k.keyid == ref.keyid for k in step_keys):
            raise UsageError(
                f"the hub's package key cannot be a functionary of {step!r}",
                hint="the training pipeline signs its steps with its own key",
            )
    md = layouts.draft_layout(keys, ref.public_key, expires)
    data = layouts.layout_bytes(md)
    op.writes.put(out, data)
    summary = layouts.layout_summary(md, data, _names(ctx))
    op.details.update(
        {
            "out": str(out),
            "sha256": summary["sha256"],
            "expires": summary["expires"],
            "package_keyid": ref.keyid,
            "functionaries": {s: sorted(k.keyid for k in ks) for s, ks in keys.items()},
        }
    )
    return LayoutInfo(summary, [])


def _set_layout(ctx: HubContext, op: Operation, path: Path) -> LayoutInfo:
    """The body of ``Hub.set_layout``.

    Raises:
        NotFoundError: no such file.
        AttestationError: not a layout, below the anchored threshold, expired, or
            outliving the anchored layout role.
        UsageError: its ``package`` step does not name this hub's package key.
        TrustError: the Image root anchors no layout keys.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise MissingFileError(
            f"{path} does not exist", hint="pass the signed layout file"
        ) from None
    md = layouts.parse_layout(data, str(path))
    layout_anchor = anchor(ctx)
    signers = layouts.signing_keys(md, layout_anchor.keys, layout_anchor.threshold, str(path))
    layouts.check_expiry(md, ctx.clock.now(), layout_anchor.expires, str(path))
    ref = package_key_ref(ctx)
    if ref is None or ref.keyid not in layouts.step_keyids(md, layouts.PACKAGE_STEP):
        raise UsageError(
            f"the {layouts.PACKAGE_STEP!r} step of {path} does not name this hub's package key",
            hint="draft the layout on this hub with `airlock hub layout draft`",
        )
    summary = layouts.layout_summary(md, data, _names(ctx))
    previous = current_layout(ctx)
    op.details.update(
        {
            "sha256": summary["sha256"],
            "expires": summary["expires"],
            "signed_by": sorted(signers),
            "previous_sha256": layouts.layout_sha256(previous) if previous else None,
        }
    )
    if previous == data:
        op.outcome = "unchanged"
        return LayoutInfo(summary, sorted(signers), changed=False)
    op.writes.put(ctx.home.root / LAYOUT_FILE, data)
    return LayoutInfo(summary, sorted(signers))


def _pipeline_links(links_dir: Path) -> list[Path]:
    if not links_dir.is_dir():
        raise MissingFileError(
            f"{links_dir} is not a directory",
            hint="pass the directory where in-toto-run wrote the pipeline's .link files",
        )
    found = sorted(p for p in links_dir.iterdir() if p.name.endswith(".link"))
    if not found:
        raise UsageError(
            f"{links_dir} holds no .link files",
            hint="record the pipeline's steps with in-toto-run (see docs/release-engineer.md)",
        )
    for path in found:
        if path.is_symlink() or not path.is_file():
            raise UsageError(f"{path} is not a regular file")
        match = attest.LINK_NAME.fullmatch(path.name)
        if match is None:
            raise UsageError(
                f"{path.name} is not named <step>.<keyid8>.link",
                hint="keep the file names in-toto-run gives its links",
            )
        if match["step"] == layouts.PACKAGE_STEP:
            raise UsageError(
                f"{path.name}: the hub records the {layouts.PACKAGE_STEP!r} step itself",
                hint="remove that file from the links directory",
            )
    return found


def attach(
    ctx: HubContext, op: Operation, ref: str, staged: StagedModel, links_dir: Path
) -> StagedModel:
    """Adds the layout, the pipeline's links and the hub's package link to a staged version.

    Raises:
        UsageError: no layout is set, the links directory is unusable, or the
            version already carries attestation files.
        AttestationError: the attestations would not verify at a site.
        SecretError: the hub passphrase does not open the package key.
    """
    layout_data = current_layout(ctx)
    if layout_data is None:
        raise UsageError(
            "no in-toto layout is set at the hub, so --links cannot be used",
            hint="draft one (`airlock hub layout draft`), have the officers sign it "
            "(`airlock ceremony sign-layout`), then `airlock hub layout set FILE`",
        )
    if any(f.kind in ("layout", "link") for f in staged.files):
        raise UsageError(f"{ref} already carries in-toto files; pass them only with --links")
    key_ref = package_key_ref(ctx)
    if key_ref is None:
        raise UsageError("the hub has no package key", hint="run `airlock hub layout draft`")
    names = {f.filename for f in staged.files}
    files = list(staged.files)
    for source in _pipeline_links(Path(links_dir)):
        if source.name in names:
            raise UsageError(f"{source.name} is both a file of the model and a link")
        sha256, length = copy_hashing(source, staged.directory / source.name)
        files.append(ModelFile(source.name, sha256, length, kind="link"))
    model_names = [f.filename for f in staged.files if f.kind == "model"]
    attest.check_file_names(model_names)
    in_toto_run(
        layouts.PACKAGE_STEP,
        model_names,
        model_names,
        [],
        base_path=str(staged.directory),
        metadata_directory=str(staged.directory),
        signer=package_signer(ctx, key_ref),
    )
    package_name = layouts.link_filename(layouts.PACKAGE_STEP, key_ref.keyid)
    for filename, kind in ((package_name, "link"), (layouts.LAYOUT_TARGET, "layout")):
        if filename in names:
            raise UsageError(f"{filename} is both a file of the model and an attestation file")
        if kind == "layout":
            (staged.directory / filename).write_bytes(layout_data)
        data = (staged.directory / filename).read_bytes()
        files.append(ModelFile(filename, layouts.layout_sha256(data), len(data), kind=kind))
    result = StagedModel(staged.directory, tuple(files))
    report = _preflight(ctx, ref, layout_data, result)
    op.details["attestations"] = report.to_dict() | {"package_keyid": key_ref.keyid}
    return result


def _preflight(
    ctx: HubContext, ref: str, layout_data: bytes, staged: StagedModel
) -> attest.AttestationReport:
    """Verifies the version's attestations exactly as a site will (fail early)."""
    ctx.home.tmp_dir.mkdir(exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="attest-", dir=ctx.home.tmp_dir))
    try:
        return attest.verify_version(
            ref,
            layout_data,
            {f.filename: staged.staged_path(f) for f in staged.files if f.kind == "link"},
            {f.filename: staged.staged_path(f) for f in staged.files if f.kind == "model"},
            anchor(ctx),
            ctx.clock.now(),
            directory / "verify",
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def draft_layout(
    ctx: HubContext, functionaries: Mapping[str, Sequence[Path]], expires_days: int, out: Path
) -> LayoutInfo:
    """Writes an unsigned in-toto layout to ``out`` (the package key is made at first use).

    Args:
        ctx: The hub.
        functionaries: Pipeline step → PEM public key files of its functionaries.
        expires_days: The layout's lifetime (at most the officers' layout role's).
        out: A new file.

    Raises:
        UsageError, ConflictError, TrustError: see the module docstring.
    """
    with operation(ctx, "hub.layout.draft", str(out)) as op:
        return _draft(ctx, op, functionaries, expires_days, Path(out))


def set_layout(ctx: HubContext, path: Path) -> LayoutInfo:
    """Makes the officers' signed layout at ``path`` the current one.

    Raises:
        AttestationError: not signed by a threshold of the anchored layout keys,
            expired, or outliving the anchored layout role.
        UsageError: the layout does not name this hub's package key.
    """
    with operation(ctx, "hub.layout.set", str(path)) as op:
        return _set_layout(ctx, op, Path(path))
