"""Volumes that are not what the signed layout says are refused, with the exact place.

Each case: the volume is recorded as damaged (where and why), the chunks verified
before the damage are kept, nothing unverified is handed out, and without parity the
refusal names the volume.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest
from helpers.volumeenv import (
    KiB,
    assemble,
    check_complete,
    flip_byte,
    write_bundle,
)

from airlock.bundles.agestream import AgeReader, AgeWriter, generate_identity
from airlock.bundles.errors import MediaError, NotEnoughVolumesError


def _damage(outcome_lines: str, label: str) -> str:
    line = next(line for line in outcome_lines.splitlines() if line.startswith(label))
    return line


def test_a_volume_of_another_series_is_refused(tmp_path: Path) -> None:
    ours = write_bundle(tmp_path, seed=1)
    other = write_bundle(tmp_path, seed=2, identity=ours.identity)  # same site, another bundle
    target = ours.data()[0]
    shutil.copyfile(other.path(other.data()[0]), ours.path(target))
    outcome = assemble(ours, tmp_path / "state")
    assert isinstance(outcome.error, NotEnoughVolumesError)
    line = _damage(outcome.lines, target.label)
    assert "damaged" in line
    assert (
        f"it says it is volume 1 of {other.data()[0].of} of series {other.written.series.id}"
        in line
    )


def test_a_volume_for_another_site_is_refused(tmp_path: Path) -> None:
    ours = write_bundle(tmp_path, seed=1)
    other = write_bundle(tmp_path, seed=1, identity=generate_identity())
    target = ours.data()[1]
    shutil.copyfile(other.path(other.data()[1]), ours.path(target))
    outcome = assemble(ours, tmp_path / "state")
    assert isinstance(outcome.error, NotEnoughVolumesError)
    assert "not encrypted to this site's age identity" in _damage(outcome.lines, target.label)


def test_swapped_volumes_are_refused(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path)
    one, two = bundle.data()[0], bundle.data()[1]
    bundle.path(one).rename(tmp_path / "swap")
    bundle.path(two).rename(bundle.path(one))
    (tmp_path / "swap").rename(bundle.path(two))
    outcome = assemble(bundle, tmp_path / "state")
    assert isinstance(outcome.error, NotEnoughVolumesError)
    assert f"it says it is volume 2 of {one.of}" in _damage(outcome.lines, one.label)
    assert f"it says it is volume 1 of {one.of}" in _damage(outcome.lines, two.label)
    message = outcome.error.message
    assert one.name in message and two.name in message


def test_a_duplicated_volume_is_refused(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path)
    one, three = bundle.data()[0], bundle.data()[2]
    shutil.copyfile(bundle.path(one), bundle.path(three))
    outcome = assemble(bundle, tmp_path / "state")
    assert isinstance(outcome.error, NotEnoughVolumesError)
    assert f"it says it is volume 1 of {one.of}" in _damage(outcome.lines, three.label)
    assert outcome.assembler.status().volumes[0].state == "verified"


def _rewrite(bundle_path: Path, identity: bytes | None, edit: object) -> None:
    """Decrypts a volume, lets ``edit`` change its tar members, writes it back (to the site)."""
    raw = bundle_path.read_bytes()
    if identity is not None:
        with open(bundle_path, "rb") as handle:
            raw = AgeReader(handle.fileno(), [identity]).read()
    members = []
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for member in tar:
            handle = tar.extractfile(member)
            assert handle is not None
            members.append((member, handle.read()))
    edit(members)  # type: ignore[operator]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for member, data in members:
            tar.addfile(member, io.BytesIO(data))
    plain = out.getvalue()
    if identity is None:
        bundle_path.write_bytes(plain)
        return
    from airlock.bundles.agestream import recipient_of

    with open(bundle_path, "wb") as handle, AgeWriter(handle, [recipient_of(identity)]) as writer:
        writer.write(plain)


@pytest.mark.parametrize("encrypted", [True, False])
def test_a_chunk_moved_between_volumes_is_refused(tmp_path: Path, encrypted: bool) -> None:
    """Even re-encrypted to the site (anyone has its recipient), a moved chunk is named."""
    bundle = write_bundle(tmp_path, encrypted=encrypted)
    one, two = bundle.data()[0], bundle.data()[1]
    moved: list[tuple[tarfile.TarInfo, bytes]] = []

    def take(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        moved.append(members.pop(2))  # chunk 2 of volume 2

    def put(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        members[2] = moved[0]  # replaces chunk 2 of volume 1 (same size)

    _rewrite(bundle.path(two), bundle.identity, take)
    _rewrite(bundle.path(one), bundle.identity, put)
    outcome = assemble(bundle, tmp_path / "state")
    assert isinstance(outcome.error, NotEnoughVolumesError)
    line = _damage(outcome.lines, one.label)
    assert f"chunk 2: found entry '{moved[0][0].name}'" in line
    assert f"(it belongs in {two.label})" in line
    assert "(1 of" in line  # chunk 1 stays verified


@pytest.mark.parametrize("encrypted", [True, False])
def test_a_truncated_volume_keeps_what_came_before(tmp_path: Path, encrypted: bool) -> None:
    bundle = write_bundle(tmp_path, encrypted=encrypted, chunk_size=16 * KiB, volume_size=140 * KiB)
    record = bundle.data()[0]
    path = bundle.path(record)
    path.write_bytes(path.read_bytes()[: 70 * KiB])
    outcome = assemble(bundle, tmp_path / "state")
    assert isinstance(outcome.error, NotEnoughVolumesError)
    status = outcome.assembler.status().volumes[0]
    assert status.state == "damaged"
    assert 0 < status.verified < status.chunks
    assert "truncated" in status.describe()
    assert f"it has {70 * KiB:,} bytes, the envelope says {record.size:,}" in status.describe()


def test_a_changed_byte_is_a_sha256_mismatch_at_its_chunk(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, encrypted=False)
    record = bundle.data()[0]
    chunk_data = 1024 + (512 + 16 * KiB) * 2 + 512  # chunk 3's data
    flip_byte(bundle.path(record), chunk_data + 99)
    outcome = assemble(bundle, tmp_path / "state")
    assert isinstance(outcome.error, NotEnoughVolumesError)
    assert f"damaged: {record.label}, chunk 3: SHA-256 mismatch" in outcome.error.message
    status = outcome.assembler.status().volumes[0]
    assert status.verified == status.chunks - 1  # only chunk 3 is missing
    with pytest.raises(MediaError, match="not complete yet"):
        outcome.assembler.complete()
    assert not any(p.suffix != ".part" for p in (tmp_path / "state" / "files").iterdir())


def test_a_changed_ciphertext_byte_fails_age_authentication_at_its_chunk(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, volume_size=200 * KiB)
    record = bundle.data()[0]
    header = 86 + 98 + 16
    flip_byte(bundle.path(record), header + 65552 + 10)  # the second 64 KiB segment
    outcome = assemble(bundle, tmp_path / "state")
    assert isinstance(outcome.error, NotEnoughVolumesError)
    line = _damage(outcome.lines, record.label)
    # plaintext [64 KiB, 128 KiB) holds chunks 4 to 8 (entries of 16.5 KiB after 1 KiB)
    assert "chunk 4: age authentication failed" in line and "(and 4 more)" in line
    status = outcome.assembler.status().volumes[0]
    assert status.verified == status.chunks - 5  # the other chunks are kept


def test_a_tampered_header_entry_is_refused(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, encrypted=False)
    record = bundle.data()[1]
    flip_byte(bundle.path(record), 512 + 30)  # inside airlock-volume.json
    outcome = assemble(bundle, tmp_path / "state")
    assert isinstance(outcome.error, NotEnoughVolumesError)
    assert "damaged" in _damage(outcome.lines, record.label)
    assert outcome.assembler.status().volumes[1].verified == 0


def test_data_after_the_end_is_damage_but_the_chunks_count(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, encrypted=False)
    record = bundle.data()[0]
    with open(bundle.path(record), "ab") as handle:
        handle.write(b"\0" * 10240)
    outcome = assemble(bundle, tmp_path / "state")
    status = outcome.assembler.status().volumes[0]
    assert status.verified == status.chunks
    assert f"it has {record.size + 10240:,} bytes" in " ".join(
        outcome.assembler.state.volumes[record.name].damage
    )
    check_complete(outcome, bundle)  # every chunk verified: the files are whole
