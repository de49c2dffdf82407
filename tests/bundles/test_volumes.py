"""Bundle format v2 volumes: round trips, the on-media format, the per-site part, the layout.

Real age (agestream, checked against the stock ``age`` and ``tar``), real files.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
from helpers.volumeenv import (
    KiB,
    MiB,
    assemble,
    check_complete,
    final_names,
    indexes_of,
    make_files,
    write_bundle,
)

from airlock.bundles.agestream import AgeReader, generate_identity, recipient_of
from airlock.bundles.chunks import ChunkIndex
from airlock.bundles.errors import (
    DecryptionError,
    IntegrityError,
    UnsafeArchiveError,
    UsageError,
)
from airlock.bundles.volumes import (
    Layout,
    LayoutSeries,
    LayoutVolume,
    SeriesFile,
    SeriesSpec,
    chunk_name,
    minimum_volume_size,
    new_name_key,
    read_site_part,
    write_series,
    write_site_part,
)


@pytest.mark.parametrize("encrypted", [True, False])
@pytest.mark.parametrize("volume_size", [None, 70 * KiB])
def test_round_trip(tmp_path: Path, encrypted: bool, volume_size: int | None) -> None:
    bundle = write_bundle(tmp_path, encrypted=encrypted, volume_size=volume_size)
    data = bundle.data()
    assert (len(data) == 1) == (volume_size is None)
    suffix = ".age" if encrypted else ".tar"
    assert final_names(bundle.out) == sorted(v.name for v in data)
    for record in data:
        assert record.name.endswith(suffix)
        assert bundle.path(record).stat().st_size == record.size
        assert volume_size is None or record.size <= volume_size
    outcome = assemble(bundle, tmp_path / "state")
    check_complete(outcome, bundle)
    status = outcome.assembler.status()
    assert status.complete and all(v.state == "verified" for v in status.volumes)


def test_volumes_fill_greedily_and_chunks_are_deduplicated(tmp_path: Path) -> None:
    files = make_files(tmp_path / "blobs", [200 * KiB])
    ((sha, path),) = files.items()
    copy = tmp_path / "copy.bin"
    copy.write_bytes(path.read_bytes() * 2)  # every chunk twice
    indexes = indexes_of({**files, hashlib.sha256(copy.read_bytes()).hexdigest(): copy}, 16 * KiB)
    key = new_name_key()
    spec = SeriesSpec(
        "00112233445566aa",
        None,
        tuple(SeriesFile(s, path if s == sha else copy, i) for s, i in indexes.items()),
    )
    (tmp_path / "out").mkdir()
    written = write_series(tmp_path / "out", spec, key, 60 * KiB)
    names = [n for v in written.layout.volumes for n in v.chunks]
    distinct = {c for i in indexes.values() for c in i.chunks}
    assert sorted(names) == sorted(chunk_name(key, c) for c in distinct)  # each chunk once
    sizes = [v.size for v in written.layout.volumes]
    assert all(s <= 60 * KiB for s in sizes) and sizes[-1] <= sizes[0]
    # greedy: a volume is full when the next chunk would not fit
    assert all(s + 17 * KiB > 60 * KiB for s in sizes[:-1])


def test_stock_age_and_tar_read_any_data_volume(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path)
    key = bundle.key_file(tmp_path)
    for record in bundle.data():
        plain = subprocess.run(
            ["age", "-d", "-i", str(key), str(bundle.path(record))], check=True, capture_output=True
        ).stdout
        listing = subprocess.run(
            ["tar", "tvf", "-"], input=plain, check=True, capture_output=True
        ).stdout.decode()
        lines = listing.splitlines()
        assert lines[0].split()[-1] == "airlock-volume.json"
        names = [line.split()[-1] for line in lines[1:]]
        layout_volume = bundle.written.layout.volumes[record.number - 1]
        assert names == list(layout_volume.chunks)
        assert all(line.startswith("-rw-r--r-- 0/0") for line in lines)
        with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
            head = tar.extractfile("airlock-volume.json")
            assert head is not None
            assert json.loads(head.read()) == {
                "format": "airlock-volume/2",
                "series": record.series,
                "volume": record.number,
                "of": record.of,
            }
            assert all(m.mtime == 0 and m.uname == "" and m.gname == "" for m in tar)


def test_chunk_names_are_keyed_and_reveal_nothing(tmp_path: Path) -> None:
    one = write_bundle(tmp_path / "a", encrypted=False, seed=3)
    two = write_bundle(tmp_path / "b", encrypted=False, seed=3)  # same files, another run
    names_one = {n for v in one.written.layout.volumes for n in v.chunks}
    names_two = {n for v in two.written.layout.volumes for n in v.chunks}
    assert not names_one & names_two
    hashes = {c[:32] for i in one.indexes.values() for c in i.chunks}
    assert not names_one & hashes
    plain = b"".join(p.read_bytes() for p in one.out.iterdir())
    for index in one.indexes.values():
        assert index.sha256.encode() not in plain
        assert all(c.encode() not in plain for c in index.chunks)


def test_minimum_volume_size_is_named_in_the_refusal(tmp_path: Path) -> None:
    identity = generate_identity()
    recipient = recipient_of(identity)
    minimum = minimum_volume_size([recipient], 16 * KiB)
    files = make_files(tmp_path / "blobs", [40 * KiB])
    indexes = indexes_of(files, 16 * KiB)
    spec = SeriesSpec(
        "0011223344556677",
        (recipient,),
        tuple(SeriesFile(s, p, indexes[s]) for s, p in files.items()),
    )
    (tmp_path / "out").mkdir()
    with pytest.raises(UsageError) as caught:
        write_series(tmp_path / "out", spec, new_name_key(), minimum - 1)
    assert f"{minimum:,}" in caught.value.message
    written = write_series(tmp_path / "out", spec, new_name_key(), minimum)
    assert all(v.size <= minimum for v in written.volumes)
    assert minimum_volume_size(None) < minimum_volume_size([recipient])
    assert minimum_volume_size([recipient]) > MiB


def test_parity_bounds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="at most one parity volume per data volume"):
        write_bundle(tmp_path, volume_size=None, parity=2)
    assert not list((tmp_path / "bundle-0").iterdir())


def test_site_part_round_trip_encrypted_and_plain(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path)
    indexes = {s: i.to_bytes() for s, i in bundle.indexes.items()}
    metadata = [
        ("metadata/image/1.root.json", b'{"a": 1}'),
        ("metadata/director/targets.json", b"{}"),
    ]
    assert bundle.identity is not None
    recipient = recipient_of(bundle.identity)
    name, size, sha = write_site_part(tmp_path, [recipient], metadata, indexes, bundle.layout)
    assert name == "site.age"
    raw = (tmp_path / name).read_bytes()
    assert (len(raw), hashlib.sha256(raw).hexdigest()) == (size, sha)
    part = read_site_part(tmp_path / name, bundle.identities, size=size, sha256=sha)
    assert part.metadata == dict(metadata)
    assert part.indexes == indexes
    assert part.layout == bundle.layout
    with open(tmp_path / name, "rb") as handle:  # the stock age format
        reader = AgeReader(handle.fileno(), [bundle.identity])
        with tarfile.open(fileobj=io.BytesIO(reader.read())) as tar:
            assert tar.getnames()[-1] == "layout.json"
    plain = tmp_path / "plain"
    plain.mkdir()
    name, size, sha = write_site_part(plain, None, metadata, indexes, bundle.layout)
    assert name == "site.tar"
    assert read_site_part(plain / name, None).layout == bundle.layout
    with pytest.raises(IntegrityError):
        read_site_part(tmp_path / "site.age", bundle.identities, size=size + 1)
    with pytest.raises(IntegrityError):
        read_site_part(tmp_path / "site.age", bundle.identities, sha256="0" * 64)
    with pytest.raises(DecryptionError, match="not encrypted to this site"):
        read_site_part(tmp_path / "site.age", [generate_identity()])


def _tar(entries: list[tuple[str, bytes, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, kind in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = "layout.json"
                info.size = 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return out.getvalue()


@pytest.mark.parametrize(
    ("entries", "error"),
    [
        (
            [("layout.json", b"L", tarfile.REGTYPE), ("extra.txt", b"x", tarfile.REGTYPE)],
            "not metadata",
        ),
        (
            [("layout.json", b"L", tarfile.REGTYPE), ("layout.json", b"L", tarfile.REGTYPE)],
            "duplicate",
        ),
        ([("index/" + "a" * 64 + ".json", b"{}", tarfile.REGTYPE)], "no layout.json"),
        ([("layout.json", b"", tarfile.SYMTYPE)], "only regular files"),
        ([("../layout.json", b"L", tarfile.REGTYPE)], "'..'"),
        ([("index/" + "A" * 64 + ".json", b"{}", tarfile.REGTYPE)], "not metadata"),
    ],
)
def test_site_part_is_read_strictly(
    tmp_path: Path, entries: list[tuple[str, bytes, bytes]], error: str
) -> None:
    layout = write_bundle(tmp_path, encrypted=False).layout
    entries = [(n, layout.to_bytes() if d == b"L" else d, k) for n, d, k in entries]
    (tmp_path / "site.tar").write_bytes(_tar(entries))
    with pytest.raises(UnsafeArchiveError, match=error):
        read_site_part(tmp_path / "site.tar", None)


def test_layout_is_parsed_strictly(tmp_path: Path) -> None:
    layout = write_bundle(tmp_path, encrypted=False).layout
    assert Layout.from_bytes(layout.to_bytes()) == layout
    doc = json.loads(layout.to_bytes())
    bad = [
        {**doc, "format": "airlock-layout/3"},
        {**doc, "extra": 1},
        {**doc, "name_key": "00"},
        {**doc, "series": [{**doc["series"][0], "volumes": doc["series"][0]["volumes"][::-1]}]},
        {**doc, "series": [doc["series"][0], doc["series"][0]]},
    ]
    twice = json.loads(json.dumps(doc))
    twice["series"][0]["volumes"][1]["chunks"][0] = twice["series"][0]["volumes"][0]["chunks"][0]
    bad.append(twice)
    for document in bad:
        with pytest.raises(IntegrityError, match=r"malformed layout\.json"):
            Layout.from_bytes(json.dumps(document).encode())
    # A bundle that carries no files (a delta of omitted versions, a revocation) has no series.
    empty = Layout(name_key=layout.name_key, series=())
    assert Layout.from_bytes(empty.to_bytes()) == empty
    with pytest.raises(IntegrityError, match=r"series is not a list"):
        Layout.from_bytes(json.dumps({**doc, "series": {}}).encode())


def test_layout_that_does_not_match_the_indexes_is_refused(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, encrypted=False)
    series = bundle.written.layout
    first = series.volumes[0]
    foreign = LayoutVolume(first.number, first.size, ("f" * 32, *first.chunks[1:]))
    moved = Layout(bundle.layout.name_key, (_with(series, foreign),))
    with pytest.raises(IntegrityError, match="no chunk index has it"):
        assemble(
            bundle,
            tmp_path / "s1",
            plan=replace(bundle.plan(), layout=moved),
        )
    dropped = LayoutVolume(first.number, first.size, first.chunks[1:])
    unplaced = Layout(bundle.layout.name_key, (_with(series, dropped),))
    with pytest.raises(IntegrityError, match="is in no volume of the layout"):
        assemble(
            bundle,
            tmp_path / "s2",
            plan=replace(bundle.plan(), layout=unplaced),
        )
    resized = LayoutVolume(first.number, first.size + 1, first.chunks)
    wrong_size = Layout(bundle.layout.name_key, (_with(series, resized),))
    with pytest.raises(IntegrityError, match="not the one the envelope signs"):
        assemble(
            bundle,
            tmp_path / "s3",
            plan=replace(bundle.plan(), layout=wrong_size),
        )
    other_key = Layout(new_name_key(), (series,))
    with pytest.raises(IntegrityError):
        assemble(
            bundle,
            tmp_path / "s4",
            plan=replace(bundle.plan(), layout=other_key),
        )


def _with(series: LayoutSeries, first: LayoutVolume) -> LayoutSeries:
    return LayoutSeries(
        series.id, series.data, series.parity, series.stripe, (first, *series.volumes[1:])
    )


def test_a_rotten_blob_store_stops_the_export_naming_file_and_chunk(tmp_path: Path) -> None:
    files = make_files(tmp_path / "blobs", [100 * KiB])
    indexes = indexes_of(files, 16 * KiB)
    ((sha, path),) = files.items()
    data = bytearray(path.read_bytes())
    data[3 * 16 * KiB + 5] ^= 1
    path.write_bytes(bytes(data))
    spec = SeriesSpec("0011223344556677", None, (SeriesFile(sha, path, indexes[sha]),))
    (tmp_path / "out").mkdir()
    with pytest.raises(IntegrityError, match=r"chunk 3: SHA-256 differs from its chunk index"):
        write_series(tmp_path / "out", spec, new_name_key(), 50 * KiB)
    assert list((tmp_path / "out").iterdir()) == []  # temporaries removed, nothing final


def test_only_wanted_files_are_assembled(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, sizes=(100 * KiB, 90 * KiB, 80 * KiB))
    wanted = sorted(bundle.files)[:1]
    outcome = assemble(bundle, tmp_path / "state", plan=bundle.plan(wanted))
    assert outcome.error is None
    done = outcome.assembler.complete()
    assert list(done) == wanted
    assert done[wanted[0]].read_bytes() == bundle.files[wanted[0]].read_bytes()
    assert sorted(p.name for p in (tmp_path / "state" / "files").iterdir()) == wanted


def test_chunk_index_round_trip_used_by_the_reader(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, encrypted=False)
    for index in bundle.indexes.values():
        assert ChunkIndex.from_bytes(index.to_bytes()) == index


@pytest.mark.parametrize("volume_size", [None, 60 * KiB])
def test_rot_in_any_chunk_is_caught_whichever_thread_hashes_it(
    tmp_path: Path, volume_size: int | None
) -> None:
    """Both writer threads hash some chunks (one in four on the encrypting thread)."""
    files = make_files(tmp_path / "blobs", [8 * 16 * KiB])
    indexes = indexes_of(files, 16 * KiB)
    ((sha, path),) = files.items()
    original = path.read_bytes()
    for chunk in range(8):
        data = bytearray(original)
        data[chunk * 16 * KiB + 11] ^= 1
        path.write_bytes(bytes(data))
        out = tmp_path / f"out-{chunk}"
        out.mkdir()
        spec = SeriesSpec("0011223344556677", None, (SeriesFile(sha, path, indexes[sha]),))
        with pytest.raises(IntegrityError, match=rf"chunk {chunk}: SHA-256 differs"):
            write_series(out, spec, new_name_key(), volume_size)
        assert list(out.iterdir()) == []
