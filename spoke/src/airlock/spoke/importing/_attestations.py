"""The spoke's in-toto check at import, the site's attestation policy, and the export for auditors.

At import (after TUF verification, before the validation gate and staging),
:func:`check_import` verifies every model version the bundle would newly
stage that carries a layout (a target of kind ``layout``, ``root.layout``),
with :func:`airlock.bundles.intoto._attest.verify_version`: the layout keys come from
the verified Image root's ``x-airlock-layout`` anchor, the links are the
version's targets of kind ``link``, and the shipped model files (kind
``model``) sit under their target names in a clean directory inside the
import's scratch area. Versions already staged were checked when they were
staged.

A version without attestations is refused when the site requires them, or
once the site holds a signed layout, unless the site's policy explicitly
exempts its family (:mod:`airlock.spoke.importing._attestation_policy`).

:func:`export` writes a staged version's layout, links and the layout public
keys (SubjectPublicKeyInfo PEM) so that the stock ``in-toto-verify`` can be
run on them next to the model file.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session, select
from tuf.api.metadata import Metadata, Root

from airlock.bundles import intoto as attest
from airlock.bundles import intoto as layouts
from airlock.bundles import tuf as tufrepo
from airlock.bundles.errors import (
    AttestationError,
    ConflictError,
    NotFoundError,
    TrustError,
    UsageError,
)
from airlock.bundles.tuf import ROOT_FILE, VerifiedMetadata, VerifiedTarget
from airlock.spoke.importing._attestation_policy import (
    AttestationPolicy,
    layout_source,
    read_policy,
)
from airlock.spoke.site._home import SpokeHome
from airlock.spoke.site._tables import StagedModel, TrustedMetadataFile

VERIFY_COMMAND = "in-toto-verify --layout root.layout --verification-keys {keys}"


def image_anchor(image_root_bytes: bytes) -> attest.Anchor:
    """The layout keys a verified Image root anchors.

    Raises:
        AttestationError: the root anchors none.
    """
    root = Metadata[Root].from_bytes(image_root_bytes).signed
    try:
        keys, threshold, expires = tufrepo.layout_keys(root)
    except TrustError as exc:
        raise AttestationError(
            f"a version carries an in-toto layout, but {exc.message[0].lower()}{exc.message[1:]}",
            hint="the layout cannot be checked without the officers' layout keys; "
            "ask the hub for versions released after a ceremony that anchors them",
        ) from None
    return attest.Anchor(keys, threshold, expires)


def _by_version(targets: tuple[VerifiedTarget, ...]) -> dict[tuple[str, str], list[VerifiedTarget]]:
    grouped: dict[tuple[str, str], list[VerifiedTarget]] = {}
    for target in targets:
        grouped.setdefault((target.model, target.version), []).append(target)
    return grouped


@dataclass
class AttestationCheck:
    """What :func:`check_import` verified."""

    verified: list[dict[str, Any]] = field(default_factory=list)
    unattested: list[str] = field(default_factory=list)
    exempted: list[str] = field(default_factory=list)
    """Unattested versions accepted only because ``unsafe_allow_unattested`` names their family."""

    @property
    def refs(self) -> list[str]:
        """The ``name@version`` of every version whose attestations verified."""
        return [str(item["ref"]) for item in self.verified]


def check_import(
    home: SpokeHome,
    verified: VerifiedMetadata,
    blobs: Mapping[str, Path],
    scratch: Path,
    now: dt.datetime,
) -> AttestationCheck:
    """Verifies the attestations of every version the import would newly stage.

    Args:
        home: The spoke.
        verified: The bundle's verified TUF metadata.
        blobs: SHA-256 → the verified blob in the scratch area.
        scratch: The import's scratch directory (verification happens below it).
        now: The spoke's clock.

    Raises:
        AttestationError: a version's attestations do not verify, or a version
            has none although the site requires them or holds a signed layout.
        UsageError: the site's ``[policy]`` is malformed.
    """
    result = AttestationCheck()
    policy = read_policy(home)
    with Session(home.engine) as session:
        staged = {(row.name, row.version) for row in session.exec(select(StagedModel))}
        held = layout_source(session, verified.targets)
    anchor: attest.Anchor | None = None
    for (name, version), targets in sorted(_by_version(verified.targets).items()):
        ref = f"{name}@{version}"
        if (name, version) in staged:
            continue
        layouts_ = [t for t in targets if t.kind == "layout"]
        if not layouts_:
            _check_unattested(ref, name, policy, held, result)
            continue
        if len(layouts_) != 1 or layouts_[0].filename != layouts.LAYOUT_TARGET:
            raise AttestationError(
                f"{ref} carries {len(layouts_)} layout file(s); exactly one "
                f"{layouts.LAYOUT_TARGET} is expected",
                hint="do not use this version and tell the hub operator",
            )
        if anchor is None:
            anchor = image_anchor(verified.new_trusted[tufrepo.IMAGE][ROOT_FILE])

        def path_of(target: VerifiedTarget) -> Path:
            return Path(blobs.get(target.sha256) or home.blob_dir / target.sha256)

        directory = Path(tempfile.mkdtemp(prefix="attest-", dir=scratch))
        try:
            report = attest.verify_version(
                ref,
                path_of(layouts_[0]).read_bytes(),
                {t.filename: path_of(t) for t in targets if t.kind == "link"},
                {t.filename: path_of(t) for t in targets if t.kind == "model"},
                anchor,
                now,
                directory / "verify",
            )
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        result.verified.append(report.to_dict())
    return result


def _check_unattested(
    ref: str, family: str, policy: AttestationPolicy, held: str | None, result: AttestationCheck
) -> None:
    """Accepts the unattested version ``ref`` only where the policy allows it, or raises."""
    if policy.required:
        raise AttestationError(
            f"{ref} carries no in-toto attestations and this site requires them",
            hint="ask the hub to release the version with its pipeline's links "
            "(`airlock hub model add … --links`), or change [policy] "
            "require_attestations in the spoke's airlock.toml",
        )
    if held is not None and not policy.allows_unattested(family):
        raise AttestationError(
            f"{ref} carries no in-toto attestations, but this site holds a signed in-toto "
            f"layout ({held}): every version must be attested from then on; its "
            "layout and links may have been stripped",
            hint="ask the hub to release the version with its pipeline's links "
            "(`airlock hub model add … --links`); only if the family is knowingly "
            f'released without them, set [policy] unsafe_allow_unattested = ["{family}"] '
            "in the spoke's airlock.toml (shown by `airlock spoke status`)",
        )
    result.unattested.append(ref)
    if held is not None:
        result.exempted.append(ref)


def _staged_files(home: SpokeHome, name: str, version: str) -> list[dict[str, Any]]:
    with Session(home.engine) as session:
        row = session.get(StagedModel, (name, version))
        if row is None:
            raise NotFoundError(
                f"{name}@{version} is not staged on this site",
                hint="see `airlock spoke status` for the staged versions",
            )
        files: list[dict[str, Any]] = json.loads(row.files)
        return files


def _trusted_image_root(home: SpokeHome) -> bytes:
    with Session(home.engine) as session:
        row = session.get(TrustedMetadataFile, (tufrepo.IMAGE, ROOT_FILE))
        if row is None:
            raise UsageError(
                f"{home.path} has no trusted Image root", hint="run `airlock spoke init`"
            )
        return bytes(row.data)


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote."""

    ref: str
    out: Path
    files: list[str]
    keys: list[str]
    command: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ref": self.ref,
            "out": str(self.out),
            "files": self.files,
            "keys": self.keys,
            "command": self.command,
        }


def export(home: SpokeHome, ref: str, out: Path, with_model: bool = False) -> ExportResult:
    """Writes a staged version's ``root.layout``, links and layout keys (PEM) to ``out``.

    The keys are those anchored in the site's trusted Image root that signed the
    layout. With ``with_model`` the staged model files are copied too;
    otherwise put them next to the exported files before running ``in-toto-verify``.

    Raises:
        UsageError: ``ref`` is not NAME@VERSION.
        NotFoundError: the version is not staged, or carries no layout.
        ConflictError: ``out`` exists and is not empty.
        AttestationError: the layout is not signed by a threshold of the trusted keys.
    """
    name, sep, version = ref.partition("@")
    if not sep or not name or not version:
        raise UsageError(f"{ref!r} is not MODEL@VERSION", hint="e.g. classifier@1")
    files = _staged_files(home, name, version)
    layout_files = [f for f in files if f.get("kind") == "layout"]
    if not layout_files:
        raise NotFoundError(
            f"{ref} carries no in-toto layout", hint="it was released without --links"
        )
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConflictError(
            f"{out} exists and is not an empty directory", hint="choose another --out"
        )
    layout_data = (home.blob_dir / str(layout_files[0]["sha256"])).read_bytes()
    md = layouts.parse_layout(layout_data, f"the layout of {ref}")
    anchor = image_anchor(_trusted_image_root(home))
    keys = layouts.signing_keys(md, anchor.keys, anchor.threshold, f"the layout of {ref}")
    wanted = [f for f in files if f.get("kind") in ("layout", "link")]
    if with_model:
        wanted += [f for f in files if f.get("kind", "model") == "model"]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for item in wanted:
        shutil.copyfile(home.blob_dir / str(item["sha256"]), out / str(item["filename"]))
        written.append(str(item["filename"]))
    key_files = []
    for keyid in sorted(keys):
        filename = f"layout-key.{keyid[:8]}.pem"
        (out / filename).write_bytes(layouts.public_key_pem(anchor.keys[keyid]))
        key_files.append(filename)
    return ExportResult(
        ref=ref,
        out=out,
        files=sorted(written),
        keys=key_files,
        command=VERIFY_COMMAND.format(keys=" ".join(key_files)),
    )
