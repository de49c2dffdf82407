"""`airlock hub export`: signed envelope, age files readable by stock tools, fresh metadata.

Both formats: format 1 carries everything in one ``payload.age``; format 2 (the
default) carries the metadata, chunk indexes and layout in ``site.age`` and the
files' chunks in data volumes (volume sizes, parity and shared media are
test_export_media.py's).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from helpers.hubenv import HUB_TIME, tree_digest
from helpers.identities import SiteKeys
from helpers.onnx_models import WEIGHTS_FILE
from tuf.api.metadata import Metadata, Root

from airlock.bundles import tuf as tufrepo
from airlock.bundles.audit import AuditLog, verify_engine
from airlock.bundles.bundle import verify_envelope
from airlock.bundles.chunks import BINDING_KEY, ChunkIndex, check_binding
from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import ConflictError, IntegrityError, NotFoundError, UsageError
from airlock.bundles.models import BundleKind, Envelope, ModelVersion
from airlock.bundles.tuf import initial_trusted, verify_repositories
from airlock.hub import export as hub_export
from airlock.hub.catalog import list_models
from airlock.hub.context import (
    HubContext,
    load_director_roots,
    load_image_repo,
    load_site_metadata,
    online_signer,
)
from airlock.hub.export import MediaOptions, assign, commit_export, export, plan_export
from airlock.hub.intake import add_model
from airlock.hub.repos import ENVELOPE, verify_delegations
from airlock.hub.sites import add_site, list_sites


@pytest.fixture
def ready(hub: HubContext, site: SiteKeys, onnx_dir: Path, onnx_file: Path) -> HubContext:
    add_site(hub, site.identity)
    add_model(hub, "detector", "1", onnx_dir)
    add_model(hub, "classifier", "1", onnx_file)
    assign(hub, "plant-7", "detector", "1")
    assign(hub, "plant-7", "classifier", "1")
    return hub


def models(hub: HubContext) -> dict[str, ModelVersion]:
    return {m.name: m for m in list_models(hub)}


def verify_with_director_root(hub: HubContext, bundle: Path) -> Envelope:
    keys, threshold = tufrepo.envelope_keys(load_director_roots(hub).root.signed)
    return verify_envelope((bundle / "envelope.json").read_bytes(), keys, threshold)


def metadata_file(bundle: Path) -> Path:
    """The file that carries the metadata: ``payload.age`` (format 1) or ``site.age`` (2)."""
    [found] = [bundle / n for n in ("payload.age", "site.age") if (bundle / n).exists()]
    return found


def decrypt_listing(
    bundle: Path, site: SiteKeys, tmp_path: Path, name: str | None = None
) -> list[str]:
    """`age -d -i identity FILE | tar tf -` with the stock tools (FILE: the metadata's)."""
    identity = site.write_age_identity(tmp_path / "site.key")
    path = bundle / name if name else metadata_file(bundle)
    plain = subprocess.run(
        ["age", "-d", "-i", str(identity), str(path)], check=True, capture_output=True
    ).stdout
    listing = subprocess.run(["tar", "tf", "-"], input=plain, check=True, capture_output=True)
    return listing.stdout.decode().split()


def extract(bundle: Path, site: SiteKeys, tmp_path: Path) -> Path:
    """The metadata's file decrypted and unpacked with the stock tools."""
    identity = site.write_age_identity(tmp_path / "site-x.key")
    dest = tmp_path / "extracted"
    dest.mkdir()
    plain = subprocess.run(
        ["age", "-d", "-i", str(identity), str(metadata_file(bundle))],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "xf", "-", "-C", str(dest)], input=plain, check=True)
    return dest


FORMATS = pytest.mark.parametrize(
    "media",
    [MediaOptions(format_version=1), MediaOptions()],
    ids=["format-1", "format-2"],
)


@FORMATS
def test_export_writes_a_signed_encrypted_bundle(
    ready: HubContext, site: SiteKeys, tmp_path: Path, media: MediaOptions
) -> None:
    out = tmp_path / "media" / "bundle-1"
    out.parent.mkdir()
    envelope = export(ready, "plant-7", out, media=media)

    volumes = [v.name for v in envelope.volumes]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["envelope.json", "payload.age"] if media.format_version == 1 else
        ["envelope.json", "site.age", *volumes]
    )  # fmt: skip
    verified = verify_with_director_root(ready, out)
    assert verified == envelope
    assert (envelope.kind, envelope.source, envelope.site_id) == (BundleKind.FULL, "hub", "plant-7")
    assert (envelope.sequence, envelope.encrypted) == (1, True)
    assert envelope.format_version == media.format_version
    assert envelope.created == HUB_TIME
    assert envelope.expires == tufrepo.expiry_from(HUB_TIME, 30)
    [part] = envelope.parts or [envelope.site_part]
    assert part is not None
    carried = metadata_file(out).read_bytes()
    assert (part.name, part.size) == (metadata_file(out).name, len(carried))
    assert part.sha256 == hashlib.sha256(carried).hexdigest()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]

    image, director = load_image_repo(ready), load_site_metadata(ready, "plant-7")
    assert image.snapshot is not None and image.timestamp is not None
    iv, dv = image.snapshot.signed.version, director.snapshot.signed.version
    meta = [
        "metadata/image/1.root.json",
        "metadata/image/timestamp.json",
        f"metadata/image/{iv}.snapshot.json",
        "metadata/image/1.targets.json",
        f"metadata/image/{image.models.signed.version}.models.json",
        *sorted(
            f"metadata/image/{md.signed.version}.tenant-{name}.json"
            for name, md in image.tenants.items()
        ),
        "metadata/director/1.root.json",
        "metadata/director/timestamp.json",
        f"metadata/director/{dv}.snapshot.json",
        f"metadata/director/{director.targets.signed.version}.targets.json",
    ]
    files = [f for m in models(ready).values() for f in m.files]
    listing = decrypt_listing(out, site, tmp_path)
    assert listing[: len(meta)] == meta
    if media.format_version == 1:
        assert sorted(listing[len(meta) :]) == sorted(f"blobs/sha256/{f.sha256}" for f in files)
    else:
        indexes = sorted(f"index/{f.sha256}.json" for f in files)
        assert listing[len(meta) :] == [*indexes, "layout.json"]
        [volume] = volumes  # one data volume without --volume-size: the header, then chunks
        chunks = decrypt_listing(out, site, tmp_path, volume)
        assert chunks[0] == "airlock-volume.json" and len(chunks) == 1 + len(files)
    for md in (image.snapshot, image.timestamp, director.snapshot, director.timestamp):
        assert tufrepo.signed_expires(md.signed) == envelope.expires


@FORMATS
def test_exported_metadata_verifies_with_the_tuf_client(
    ready: HubContext, site: SiteKeys, tmp_path: Path, ceremony, media: MediaOptions
) -> None:
    """The spoke's verification core accepts it: roots, delegations, agreement, site id."""
    export(ready, "plant-7", tmp_path / "bundle", media=media)
    dest = extract(tmp_path / "bundle", site, tmp_path)
    metadata = {
        str(p.relative_to(dest)): p.read_bytes() for p in (dest / "metadata").rglob("*.json")
    }
    trusted = {
        tufrepo.IMAGE: initial_trusted(ceremony.image_root.read_bytes()),
        tufrepo.DIRECTOR: initial_trusted(ceremony.director_root.read_bytes()),
    }
    result = verify_repositories(metadata, trusted, "plant-7")
    expected = {f.sha256: f.length for m in models(ready).values() for f in m.files}
    assert result.allowed_blobs() == expected
    for target in result.targets:  # format 1: the file; format 2: its signed chunk index
        if media.format_version == 1:
            blob = dest / "blobs" / "sha256" / target.sha256
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == target.sha256
        else:
            index = (dest / "index" / f"{target.sha256}.json").read_bytes()
            bound = target.director_custom[BINDING_KEY]
            assert check_binding(index, bound, target.sha256, target.length).length == target.length
    primaries = {t.path for t in result.targets if t.primary}
    assert primaries == {"detector/1/model.onnx", "classifier/1/classifier.onnx"}
    assert f"detector/1/{WEIGHTS_FILE}" in {t.path for t in result.targets}


def test_each_export_increments_the_sequence_and_timestamp_versions(
    ready: HubContext, clock: FixedClock, tmp_path: Path
) -> None:
    first = export(ready, "plant-7", tmp_path / "b1")
    image_ts = load_image_repo(ready).timestamp
    director_ts = load_site_metadata(ready, "plant-7").timestamp
    clock.advance(dt.timedelta(hours=1))
    second = export(ready, "plant-7", tmp_path / "b2")
    assert (first.sequence, second.sequence) == (1, 2)
    assert second.bundle_id != first.bundle_id
    assert image_ts is not None and load_image_repo(ready).timestamp is not None
    assert load_image_repo(ready).timestamp.signed.version == image_ts.signed.version + 1
    assert (
        load_site_metadata(ready, "plant-7").timestamp.signed.version
        == director_ts.signed.version + 1
    )
    assert [s.sequence for s in list_sites(ready)] == [2]
    audit = AuditLog(ready.engine, "hub").entries()
    exports = [json.loads(e.details) for e in audit if e.action == "hub.export"]
    assert [(d["sequence"], d["bundle_id"]) for d in exports] == [
        (1, first.bundle_id),
        (2, second.bundle_id),
    ]


def _tar_listing(path: Path) -> list[str]:
    return subprocess.run(["tar", "tf", str(path)], check=True, capture_output=True).stdout.split()


@FORMATS
def test_export_without_encryption_writes_a_plain_tar(
    hub: HubContext, site: SiteKeys, onnx_file: Path, tmp_path: Path, media: MediaOptions
) -> None:
    add_site(hub, site.identity, encrypt=False)
    add_model(hub, "classifier", "1", onnx_file)
    assign(hub, "plant-7", "classifier", "1")
    envelope = export(hub, "plant-7", tmp_path / "plain", media=media)
    assert envelope.encrypted is False
    if media.format_version == 1:
        assert [p.name for p in envelope.parts] == ["payload.tar"]
        listing = _tar_listing(tmp_path / "plain" / "payload.tar")
        assert listing[-1].startswith(b"blobs/sha256/")
        return
    assert envelope.site_part is not None and envelope.site_part.name == "site.tar"
    assert _tar_listing(tmp_path / "plain" / "site.tar")[-1] == b"layout.json"
    [volume] = envelope.volumes
    assert volume.name.endswith("-data-001-of-001.tar")
    assert _tar_listing(tmp_path / "plain" / volume.name)[0] == b"airlock-volume.json"


@FORMATS
def test_export_with_no_assignment_carries_metadata_only(
    hub: HubContext, site: SiteKeys, tmp_path: Path, media: MediaOptions
) -> None:
    add_site(hub, site.identity)
    envelope = export(hub, "plant-7", tmp_path / "empty", media=media)
    listing = decrypt_listing(tmp_path / "empty", site, tmp_path)
    if media.format_version == 2:  # no volume, no index: the layout lists no series
        assert (envelope.series, envelope.volumes) == ((), ())
        assert listing.pop() == "layout.json"
    assert listing and all(name.startswith("metadata/") for name in listing)


def test_export_refuses_an_existing_directory(ready: HubContext, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "something").write_text("x")
    before = tree_digest(ready.home.root)
    with pytest.raises(ConflictError, match="not an empty directory"):
        export(ready, "plant-7", out)
    assert tree_digest(ready.home.root) == before
    assert [p.name for p in out.iterdir()] == ["something"]
    assert [s.sequence for s in list_sites(ready)] == [0]


@pytest.mark.parametrize(
    ("days_later", "named"),
    [
        (170, ["Image targets"]),
        (340, ["Image root", "Image targets", "Director root"]),
    ],
)
def test_export_refuses_when_offline_roles_expire_before_the_bundle(
    ready: HubContext, clock: FixedClock, tmp_path: Path, days_later: int, named: list[str]
) -> None:
    clock.advance(dt.timedelta(days=days_later))
    before = tree_digest(ready.home.root)
    with pytest.raises(UsageError) as caught:
        export(ready, "plant-7", tmp_path / "late")
    message = caught.value.message
    for role in named:
        assert role in message
    assert ("Image root" in message) == ("Image root" in named)
    assert "re-signing ceremony" in caught.value.hint
    assert not (tmp_path / "late").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".late")]
    assert tree_digest(ready.home.root) == before
    assert [s.sequence for s in list_sites(ready)] == [0]
    last = AuditLog(ready.engine, "hub").entries()[-1]
    assert (last.action, last.outcome) == ("hub.export", "refused")
    assert "Image targets" in json.loads(last.details)["message"]
    assert verify_engine(ready.engine).ok


def test_online_roles_expiring_before_the_bundle_are_resigned(
    ready: HubContext, clock: FixedClock, tmp_path: Path
) -> None:
    clock.advance(dt.timedelta(days=80))  # models, tenants, director targets: 90-day roles
    plan = plan_export(ready, "plant-7")
    assert set(plan.resigned) == {"models", "tenant-default", "director targets of plant-7"}
    envelope = commit_export(ready, plan, tmp_path / "b")
    repo = load_image_repo(ready)
    for md in [repo.models, *repo.tenants.values(), load_site_metadata(ready, "plant-7").targets]:
        assert tufrepo.signed_expires(md.signed) > envelope.expires
    verify_delegations(repo)


def test_an_already_expired_bundle_can_be_made_with_a_past_clock(
    ready: HubContext, clock: FixedClock, tmp_path: Path
) -> None:
    clock.advance(dt.timedelta(days=-40))
    envelope = export(ready, "plant-7", tmp_path / "old")
    assert envelope.expires < HUB_TIME
    assert verify_with_director_root(ready, tmp_path / "old").expires == envelope.expires


@FORMATS
def test_a_modified_plan_is_written_with_a_valid_envelope(
    ready: HubContext, site: SiteKeys, tmp_path: Path, media: MediaOptions
) -> None:
    """The attack-test path: real signatures around a metadata list that lost a file."""
    plan = plan_export(ready, "plant-7")
    dropped = "metadata/director/1.root.json"
    bad = dataclasses.replace(plan, metadata=[m for m in plan.metadata if m[0] != dropped])
    envelope = commit_export(ready, bad, tmp_path / "attack", media)
    assert verify_with_director_root(ready, tmp_path / "attack").sequence == envelope.sequence
    assert dropped not in decrypt_listing(tmp_path / "attack", site, tmp_path)
    with pytest.raises(ConflictError, match="changed since"):
        commit_export(ready, plan, tmp_path / "stale")
    assert not (tmp_path / "stale").exists()


def test_write_bundle_needs_no_database(ready: HubContext, site: SiteKeys, tmp_path: Path) -> None:
    plan = plan_export(ready, "plant-7")
    envelope = hub_export.write_bundle(
        tmp_path / "raw",
        site_id="plant-7",
        sequence=99,
        created=plan.created,
        expires=plan.expires,
        metadata=plan.metadata,
        blobs=plan.blobs,
        recipients=plan.recipients,
        signers=[online_signer(ready, ENVELOPE)],
    )
    assert verify_with_director_root(ready, tmp_path / "raw").sequence == 99 == envelope.sequence
    assert [s.sequence for s in list_sites(ready)] == [0]
    root = Metadata[Root].from_bytes(dict(plan.metadata)["metadata/director/1.root.json"])
    assert tufrepo.envelope_keys(root.signed)[0].keys() == {
        online_signer(ready, ENVELOPE).public_key.keyid
    }


def test_export_of_an_unknown_site_is_refused(hub: HubContext, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not registered"):
        export(hub, "plant-404", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_export_into_an_existing_empty_directory(ready: HubContext, tmp_path: Path) -> None:
    out = tmp_path / "mounted-medium"
    out.mkdir()
    envelope = export(ready, "plant-7", out)
    names = ["envelope.json", "site.age", *(v.name for v in envelope.volumes)]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)


def test_a_damaged_blob_store_stops_the_export(ready: HubContext, tmp_path: Path) -> None:
    blob = ready.blobs.path(models(ready)["classifier"].files[0].sha256)
    blob.write_bytes(blob.read_bytes() + b"extra")
    before = tree_digest(ready.home.root)
    with pytest.raises(IntegrityError, match="the release recorded"):
        export(ready, "plant-7", tmp_path / "b")
    blob.unlink()
    with pytest.raises(NotFoundError, match="missing"):
        export(ready, "plant-7", tmp_path / "b")
    assert not (tmp_path / "b").exists()
    assert [s.sequence for s in list_sites(ready)] == [0]
    del before[str(blob.relative_to(ready.home.root))]
    assert tree_digest(ready.home.root) == before
    outcomes = [e.outcome for e in AuditLog(ready.engine, "hub").entries()[-2:]]
    assert outcomes == ["refused", "refused"]


def test_every_carried_file_s_chunk_index_is_signed_into_its_director_target(
    ready: HubContext, tmp_path: Path
) -> None:
    plan = plan_export(ready, "plant-7")
    assert set(plan.indexes) == {b.sha256 for b in plan.blobs}
    commit_export(ready, plan, tmp_path / "b1")
    targets = load_site_metadata(ready, "plant-7").targets.signed.targets
    for target in targets.values():
        sha256 = target.hashes["sha256"]
        bound = target.unrecognized_fields["custom"][tufrepo.CUSTOM_KEY]["chunks"]
        index = check_binding(plan.indexes[sha256].to_bytes(), bound, sha256, target.length)
        assert index == ready.blobs.chunk_index(sha256, target.length)
    # The index is cached: a damaged cache entry is computed again, never trusted.
    sha256 = next(iter(plan.indexes))
    cached = ready.blobs.index_dir / f"{sha256}.json"
    good = cached.read_bytes()
    cached.write_bytes(good.replace(b'"chunks":["', b'"chunks":["0'))
    assert ready.blobs.chunk_index(sha256, plan.indexes[sha256].length).to_bytes() == good
    assert ChunkIndex.from_bytes(cached.read_bytes()) == plan.indexes[sha256]
