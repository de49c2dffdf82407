"""Parity volumes: any k of k+N volumes rebuild the series; a lying parity volume is named.

Real zfec, real age; the rebuilt bytes go through the same checks as any volume.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import zfec
from helpers.volumeenv import (
    KiB,
    MiB,
    assemble,
    check_complete,
    flip_byte,
    hide,
    write_bundle,
)

from airlock.bundles.errors import NotEnoughVolumesError


def test_parity_is_zfec_over_the_data_volumes_file_bytes(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, parity=2)
    data = [bundle.path(v).read_bytes() for v in bundle.data()]
    longest = max(len(d) for d in data)
    padded = [d + bytes(longest - len(d)) for d in data]
    k = len(data)
    expected = zfec.Encoder(k, k + 2).encode(padded, [k, k + 1])
    for record, share in zip(bundle.parity(), expected, strict=True):
        assert bundle.path(record).read_bytes() == share
        assert record.size == longest
        assert record.sha256 is not None


def test_losing_any_one_data_volume_with_parity_1(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, parity=1, encrypted=False)
    assert len(bundle.data()) >= 4
    for record in bundle.data():
        hide(bundle, record)
        outcome = assemble(bundle, tmp_path / f"state-{record.number}")
        check_complete(outcome, bundle)
        status = {v.record.name: v for v in outcome.assembler.status().volumes}
        assert status[record.name].state == "verified" and status[record.name].rebuilt
        assert status[bundle.parity()[0].name].state == "verified"
        (tmp_path / "bundle-0-lost" / record.name).rename(bundle.path(record))


def test_losing_any_two_volumes_with_parity_2(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, parity=2, sizes=(200 * KiB, 60 * KiB))
    volumes = bundle.data() + bundle.parity()
    for n, pair in enumerate(itertools.combinations(volumes, 2)):
        hide(bundle, *pair)
        outcome = assemble(bundle, tmp_path / f"state-{n}")
        check_complete(outcome, bundle)
        for record in pair:
            (tmp_path / "bundle-0-lost" / record.name).rename(bundle.path(record))


def test_rebuild_reads_each_volume_once(tmp_path: Path) -> None:
    """The present volumes are verified from the same reads that feed the decoder."""
    bundle = write_bundle(
        tmp_path, parity=1, sizes=(5 * MiB,), chunk_size=MiB, volume_size=2 * MiB + 64 * KiB
    )
    lost = bundle.data()[1]
    hide(bundle, lost)
    outcome = assemble(bundle, tmp_path / "state")
    check_complete(outcome, bundle)
    present = sum(v.size for v in bundle.written.volumes if v != lost)
    assert outcome.bytes_read == present


def test_a_damaged_volume_keeps_its_good_chunks_and_the_rest_is_rebuilt(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, parity=1, encrypted=False)
    record = bundle.data()[1]
    flip_byte(bundle.path(record), 3 * 512 + 100)  # inside chunk 1's data
    outcome = assemble(bundle, tmp_path / "state")
    check_complete(outcome, bundle)
    status = {v.record.name: v for v in outcome.assembler.status().volumes}
    assert status[record.name].rebuilt
    assert any("chunk 1: SHA-256 mismatch" in d for d in status[record.name].damage)


def test_a_parity_volume_that_lies_is_named_and_the_other_one_used(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, parity=2)
    hide(bundle, bundle.data()[0])
    liar = bundle.parity()[0]
    flip_byte(bundle.path(liar), 1000)
    outcome = assemble(bundle, tmp_path / "state")
    check_complete(outcome, bundle)
    status = {v.record.name: v for v in outcome.assembler.status().volumes}
    assert status[liar.name].state == "damaged"
    assert "SHA-256 is not the one the envelope signs" in status[liar.name].describe()
    assert status[bundle.parity()[1].name].state == "verified"


def test_a_lying_parity_with_nothing_else_left_is_refused_by_name(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, parity=1)
    lost = bundle.data()[2]
    hide(bundle, lost)
    liar = bundle.parity()[0]
    flip_byte(bundle.path(liar), 700)
    outcome = assemble(bundle, tmp_path / "state")
    assert isinstance(outcome.error, NotEnoughVolumesError)
    message = outcome.error.message
    assert f"need any 1 more of: volume 3 ({lost.name}), parity 1 ({liar.name})" in message
    assert f"{liar.label}: its SHA-256 is not the one signed" in message
    with pytest.raises(Exception, match="not complete yet"):
        outcome.assembler.complete()


def test_too_much_damage_names_every_volume_and_how_many_more(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, parity=1, encrypted=False)
    one, two = bundle.data()[0], bundle.data()[3]
    hide(bundle, one)
    flip_byte(bundle.path(two), 3 * 512 + 7)
    outcome = assemble(bundle, tmp_path / "state")
    assert isinstance(outcome.error, NotEnoughVolumesError)
    assert outcome.error.exit_code == 9  # incomplete: bring the media named
    message = outcome.error.message
    assert f"need any 1 more of: volume 1 ({one.name}), volume 4 ({two.name})" in message
    assert f"missing: {one.label}" in message
    assert f"damaged: {two.label}, chunk 1: SHA-256 mismatch" in message
    lines = outcome.lines
    assert f"{one.label}: missing" in lines
    assert f"{two.label}: damaged" in lines
    # the medium comes back: the import completes, reading only what was missing
    (tmp_path / "bundle-0-lost" / one.name).rename(bundle.path(one))
    again = assemble(bundle, tmp_path / "state")
    check_complete(again, bundle)


def test_without_parity_a_missing_volume_is_named(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path)
    lost = bundle.data()[1]
    hide(bundle, lost)
    outcome = assemble(bundle, tmp_path / "state")
    assert isinstance(outcome.error, NotEnoughVolumesError)
    assert f"need this volume: volume 2 ({lost.name})" in outcome.error.message
    status = outcome.assembler.status()
    assert status.files_complete < status.files_total
    others = [v for v in status.volumes if v.record != lost]
    assert all(v.state in ("verified", "unused") for v in others)
