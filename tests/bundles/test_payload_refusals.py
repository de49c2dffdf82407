"""Payload reader: every strict-unpack refusal, encrypted and plaintext.

Malicious archives are built with ``tarfile`` directly. Each refusal asserts the
exception type, that the message names the rule, and that ``dest_dir`` is left
empty.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyrage
import pytest
from pyrage import x25519

from airlock.bundles.bundle import PayloadLimits, open_parts, read_payload
from airlock.bundles.errors import IntegrityError, MediaError, UnsafeArchiveError

GOOD_BLOB = b"model bytes " * 1000
GOOD_HEX = hashlib.sha256(GOOD_BLOB).hexdigest()
OTHER_BLOB = b"another model"
OTHER_HEX = hashlib.sha256(OTHER_BLOB).hexdigest()
ROOT = "metadata/image/1.root.json"


@pytest.fixture(scope="module")
def identity() -> Any:
    return x25519.Identity.generate()


@pytest.fixture(params=["age", "tar"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


Entry = tuple[tarfile.TarInfo, bytes | None]


def reg(name: str, data: bytes = b"{}") -> Entry:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> Entry:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def blob(data: bytes = GOOD_BLOB, hex_name: str | None = None) -> Entry:
    return reg(f"blobs/sha256/{hex_name or hashlib.sha256(data).hexdigest()}", data)


def build(entries: list[Entry], fmt: int = tarfile.PAX_FORMAT, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, **kwargs) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


class Reader:
    """Writes a plaintext tar as this test's payload (age-encrypted or not) and reads it."""

    def __init__(self, tmp_path: Path, mode: str, identity: Any) -> None:
        self.tmp_path, self.mode, self.identity = tmp_path, mode, identity
        self.dest = tmp_path / "dest"
        self.dest.mkdir()
        self.calls = 0

    def read(
        self,
        plain: bytes,
        allowed: Mapping[str, int] | None = None,
        limits: PayloadLimits | None = None,
        on_metadata: Callable[[dict[str, bytes]], Mapping[str, int]] | None = None,
    ) -> Any:
        if self.mode == "age":
            payload = self.tmp_path / "payload.age"
            payload.write_bytes(pyrage.encrypt(plain, [self.identity.to_public()]))
            identities: list[Any] | None = [self.identity]
        else:
            payload = self.tmp_path / "payload.tar"
            payload.write_bytes(plain)
            identities = None
        allow = {GOOD_HEX: len(GOOD_BLOB)} if allowed is None else allowed

        def default(_: dict[str, bytes]) -> Mapping[str, int]:
            self.calls += 1
            return allow

        return read_payload(
            open_parts([payload]),
            identities,
            self.dest,
            on_metadata or default,
            limits or PayloadLimits(),
        )

    def refused(self, exc_type: type[Exception], match: str, plain: bytes, **kwargs: Any) -> None:
        with pytest.raises(exc_type, match=match):
            self.read(plain, **kwargs)
        assert list(self.dest.iterdir()) == [], "dest_dir must be left empty"


@pytest.fixture
def reader(tmp_path: Path, mode: str, identity: Any) -> Reader:
    return Reader(tmp_path, mode, identity)


def test_a_good_archive_is_accepted(reader: Reader) -> None:
    result = reader.read(build([reg(ROOT), blob()]))
    assert list(result.metadata) == [ROOT]
    assert result.blobs[GOOD_HEX].read_bytes() == GOOD_BLOB
    assert reader.calls == 1


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("/etc/passwd", "absolute"),
        ("/metadata/image/1.root.json", "absolute"),
        ("../x", r"'\.\.' components"),
        ("metadata/image/../../x", r"'\.\.' components"),
        ("blobs/sha256/../../../etc/cron.d/x", r"'\.\.' components"),
        ("metadata\\image\\x", "NUL or backslash"),
        ("metadata/image/sub/1.root.json", "neither"),
        ("metadata/1.root.json", "neither"),
        ("metadata/image/.hidden", "neither"),
        ("metadata/image/./x", "neither"),
        ("metadata//image/x", "neither"),
        ("notes.txt", "neither"),
        (f"blobs/sha256/{GOOD_HEX.upper()}", "neither"),
        (f"blobs/sha256/{GOOD_HEX}x", "neither"),
        (f"blobs/sha512/{GOOD_HEX}", "neither"),
        ("metadata/image/caf\u00e9.json", "neither"),
    ],
)
def test_bad_names(reader: Reader, name: str, rule: str) -> None:
    reader.refused(UnsafeArchiveError, rule, build([reg(name)]))


def test_a_pax_header_renaming_an_entry_is_checked(reader: Reader) -> None:
    info, data = reg(ROOT)
    info.pax_headers = {"path": "../evil"}
    reader.refused(UnsafeArchiveError, r"'\.\./evil'.*'\.\.' components", build([(info, data)]))


def test_a_pax_name_with_nul(reader: Reader) -> None:
    info, data = reg(ROOT)
    info.pax_headers = {"path": "metadata/image/a\x00b"}
    reader.refused(UnsafeArchiveError, "NUL or backslash", build([(info, data)]))


def test_a_gnu_long_name_is_checked(reader: Reader) -> None:
    plain = build([reg("metadata/image/" + "../" * 60 + "x")], fmt=tarfile.GNU_FORMAT)
    reader.refused(UnsafeArchiveError, r"'\.\.' components", plain)


def test_a_gnu_long_valid_name_is_accepted(reader: Reader) -> None:
    long_name = "metadata/" + "r" * 120 + "/" + "f" * 120
    result = reader.read(build([reg(long_name)], fmt=tarfile.GNU_FORMAT), allowed={})
    assert list(result.metadata) == [long_name]


def test_global_pax_header_is_refused(reader: Reader) -> None:
    plain = build([reg(ROOT)], pax_headers={"path": "metadata/image/x"})
    reader.refused(UnsafeArchiveError, "global pax header", plain)


# --- types --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "what"),
    [
        (tarfile.SYMTYPE, "symbolic link"),
        (tarfile.LNKTYPE, "hard link"),
        (tarfile.CHRTYPE, "character device"),
        (tarfile.BLKTYPE, "block device"),
        (tarfile.FIFOTYPE, "FIFO"),
        (tarfile.DIRTYPE, "directory"),
        (tarfile.CONTTYPE, "contiguous file"),
    ],
)
def test_only_regular_files(reader: Reader, kind: bytes, what: str) -> None:
    plain = build([special("metadata/image/x", kind, linkname="/etc/passwd")])
    reader.refused(UnsafeArchiveError, f"is a {what}; only regular files", plain)


def test_a_link_named_like_a_blob(reader: Reader) -> None:
    plain = build([reg(ROOT), special(f"blobs/sha256/{GOOD_HEX}", tarfile.SYMTYPE, "/etc/shadow")])
    reader.refused(UnsafeArchiveError, "symbolic link", plain)


def test_plain_directory_entries_are_refused_too(reader: Reader) -> None:
    reader.refused(UnsafeArchiveError, "directory", build([special("metadata", tarfile.DIRTYPE)]))


def test_sparse_files(reader: Reader) -> None:
    plain = build([special("metadata/image/x", tarfile.GNUTYPE_SPARSE)], fmt=tarfile.GNU_FORMAT)
    reader.refused(UnsafeArchiveError, "sparse file", plain)


# --- order, duplicates, listing -----------------------------------------------------------------


def test_duplicate_metadata(reader: Reader) -> None:
    reader.refused(UnsafeArchiveError, "duplicate name", build([reg(ROOT), reg(ROOT, b"[]")]))


def test_duplicate_blob(reader: Reader) -> None:
    reader.refused(UnsafeArchiveError, "duplicate name", build([reg(ROOT), blob(), blob()]))


def test_metadata_after_blob(reader: Reader) -> None:
    plain = build([reg(ROOT), blob(), reg("metadata/director/1.root.json")])
    reader.refused(UnsafeArchiveError, "metadata after the first blob", plain)


def test_blob_not_listed(reader: Reader) -> None:
    plain = build([reg(ROOT), blob(), blob(OTHER_BLOB)])
    reader.refused(UnsafeArchiveError, "file not listed", plain)


def test_missing_blob(reader: Reader) -> None:
    allowed = {GOOD_HEX: len(GOOD_BLOB), OTHER_HEX: len(OTHER_BLOB)}
    plain = build([reg(ROOT), blob()])
    reader.refused(
        IntegrityError, f"missing from the payload, first: {OTHER_HEX}", plain, allowed=allowed
    )


# --- sizes and hashes ---------------------------------------------------------------------------


def test_blob_above_the_signed_size(reader: Reader) -> None:
    plain = build([reg(ROOT), blob()])
    allowed = {GOOD_HEX: len(GOOD_BLOB) - 1}
    reader.refused(IntegrityError, "size above the signed one", plain, allowed=allowed)


def test_blob_below_the_signed_size(reader: Reader) -> None:
    plain = build([reg(ROOT), blob()])
    reader.refused(IntegrityError, "size below the signed one", plain, allowed={GOOD_HEX: 10**6})


def test_blob_content_not_matching_its_name(reader: Reader) -> None:
    forged = b"evil bytes!!" * 1000  # same length as GOOD_BLOB, different content
    assert len(forged) == len(GOOD_BLOB)
    plain = build([reg(ROOT), blob(forged, hex_name=GOOD_HEX)])
    reader.refused(IntegrityError, "does not match its name", plain)


def test_a_later_failure_removes_blobs_already_written(reader: Reader) -> None:
    forged = b"x" * len(OTHER_BLOB)
    plain = build([reg(ROOT), blob(), blob(forged, hex_name=OTHER_HEX)])
    allowed = {GOOD_HEX: len(GOOD_BLOB), OTHER_HEX: len(OTHER_BLOB)}
    reader.refused(IntegrityError, "does not match its name", plain, allowed=allowed)


# --- on_metadata --------------------------------------------------------------------------------


class Untrusted(Exception):
    pass


def test_on_metadata_exception_propagates_unchanged(reader: Reader) -> None:
    raised = Untrusted("bad signature")
    seen: list[dict[str, bytes]] = []

    def verify(metadata: dict[str, bytes]) -> Mapping[str, int]:
        seen.append(dict(metadata))
        raise raised

    plain = build([reg(ROOT, b"root"), reg("metadata/director/timestamp.json", b"ts"), blob()])
    with pytest.raises(Untrusted) as info:
        reader.read(plain, on_metadata=verify)
    assert info.value is raised
    assert seen == [{ROOT: b"root", "metadata/director/timestamp.json": b"ts"}]
    assert list(reader.dest.iterdir()) == []


def test_on_metadata_exception_at_end_of_archive(reader: Reader) -> None:
    def verify(metadata: dict[str, bytes]) -> Mapping[str, int]:
        raise Untrusted("expired")

    with pytest.raises(Untrusted, match="expired"):
        reader.read(build([reg(ROOT)]), on_metadata=verify)
    assert list(reader.dest.iterdir()) == []


# --- limits -------------------------------------------------------------------------------------


def test_metadata_file_limit(reader: Reader) -> None:
    limits = PayloadLimits(max_metadata_file_bytes=100)
    plain = build([reg(ROOT, b"x" * 101)])
    reader.refused(UnsafeArchiveError, "above the limit of 100", plain, limits=limits)


def test_metadata_total_limit(reader: Reader) -> None:
    limits = PayloadLimits(max_metadata_total_bytes=150)
    plain = build([reg(ROOT, b"x" * 100), reg("metadata/image/2.root.json", b"x" * 100)])
    reader.refused(UnsafeArchiveError, "total limit of 150", plain, limits=limits)


def test_entry_limit(reader: Reader) -> None:
    limits = PayloadLimits(max_entries=3)
    plain = build([reg(f"metadata/image/{n}.root.json") for n in range(4)])
    reader.refused(UnsafeArchiveError, "more than 3 entries", plain, limits=limits)


def test_header_data_limit(reader: Reader) -> None:
    info, data = reg(ROOT)
    info.pax_headers = {"comment": "c" * 10_000}
    limits = PayloadLimits(max_header_bytes=4096)
    reader.refused(
        UnsafeArchiveError, "tar header data above 4096", build([(info, data)]), limits=limits
    )


# --- damaged archives ---------------------------------------------------------------------------


def test_truncated_inside_a_blob(reader: Reader) -> None:
    plain = build([reg(ROOT), blob()])
    cut = plain.index(GOOD_BLOB[:64]) + 5000
    reader.refused(MediaError, "truncated inside entry", plain[:cut])


def test_truncated_between_entries(reader: Reader) -> None:
    plain = build([reg(ROOT), blob()])
    end = plain.index(GOOD_BLOB[:64]) + len(GOOD_BLOB)
    end += -end % 512
    reader.refused(MediaError, "no end-of-archive marker", plain[:end])


def test_truncated_end_marker(reader: Reader) -> None:
    plain = build([reg(ROOT), blob()])
    end = plain.index(GOOD_BLOB[:64]) + len(GOOD_BLOB)
    end += -end % 512
    reader.refused(MediaError, "end-of-archive marker is truncated", plain[: end + 512])


def test_data_after_the_end_marker(reader: Reader) -> None:
    plain = build([reg(ROOT), blob()]) + build([reg("metadata/image/smuggled")])
    reader.refused(UnsafeArchiveError, "after the end-of-archive marker", plain)


def test_garbage_header(reader: Reader) -> None:
    plain = build([reg(ROOT)])
    garbage = bytes(range(256)) * 2
    reader.refused(UnsafeArchiveError, "malformed", plain[:1024] + garbage + plain[1024:])


def test_empty_payload(reader: Reader) -> None:
    reader.refused(MediaError, "truncated", b"")


# --- failures while the decryptor is still streaming ---------------------------------------------


@pytest.mark.parametrize("failure", ["refusal", "on_metadata"])
def test_early_failure_stops_the_decryptor(tmp_path: Path, identity: Any, failure: str) -> None:
    """The reader fails while pyrage still has megabytes to write: no deadlock, clean error."""
    big = b"\x5a" * (12 << 20)
    big_hex = hashlib.sha256(big).hexdigest()
    entries = [reg(ROOT), blob(big)]
    if failure == "refusal":
        entries.insert(1, special(f"blobs/sha256/{GOOD_HEX}", tarfile.SYMTYPE, "/etc/shadow"))
    reader = Reader(tmp_path, "age", identity)

    def verify(_: dict[str, bytes]) -> Mapping[str, int]:
        if failure == "on_metadata":
            raise Untrusted("threshold not met")
        return {big_hex: len(big)}

    expected: type[Exception] = UnsafeArchiveError if failure == "refusal" else Untrusted
    plain = build(entries)
    fds_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(expected):
        reader.read(plain, on_metadata=verify)
    assert list(reader.dest.iterdir()) == []
    assert len(os.listdir("/proc/self/fd")) == fds_before  # pipes and parts closed
    assert [t.name for t in threading.enumerate() if t.name.startswith("payload-")] == []
