"""What is decrypted is what was hashed: parts are checked once, held open, never re-opened.

The attacker owns the medium while the site's identity is being unlocked: they
rename another file over a checked part, or write into it in place. Real
pyrage and real files; nothing is mocked.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers.payloadenv import Recorder, allowed_of, store_blob
from pyrage import x25519

from airlock.bundles.bundle import BlobSource, check_parts, read_payload, write_payload
from airlock.bundles.errors import IntegrityError, MediaError
from airlock.bundles.models import PayloadPart

METADATA = [("metadata/image/1.root.json", b'{"signed": "image root"}')]
EVIL_METADATA = [("metadata/image/1.root.json", b'{"signed": "the attacker\'s root"}')]


@pytest.fixture(scope="module")
def identity() -> Any:
    return x25519.Identity.generate()


@pytest.fixture(scope="module")
def blob(tmp_path_factory: pytest.TempPathFactory) -> BlobSource:
    # several age chunks and 1 MiB buffers
    return store_blob(tmp_path_factory.mktemp("store"), os.urandom(3 * (1 << 20) + 7))


def split(payload: Path, bundle: Path, cuts: int) -> list[PayloadPart]:
    """Cuts ``payload`` into ``cuts`` parts ``payload.age.000``… in the new folder ``bundle``."""
    data = payload.read_bytes()
    bundle.mkdir()
    step = len(data) // cuts + 1
    parts = []
    for index in range(cuts):
        chunk = data[index * step : (index + 1) * step]
        name = f"payload.age.{index:03d}" if cuts > 1 else "payload.age"
        (bundle / name).write_bytes(chunk)
        parts.append(PayloadPart(name, len(chunk), hashlib.sha256(chunk).hexdigest()))
    return parts


@pytest.mark.parametrize("cuts", [1, 3])
def test_a_part_renamed_over_after_the_check_is_never_read(
    tmp_path: Path, identity: Any, blob: BlobSource, cuts: int
) -> None:
    recipient = str(identity.to_public())
    write_payload(tmp_path / "genuine", METADATA, [blob], [recipient])
    write_payload(tmp_path / "evil", EVIL_METADATA, [], [recipient])
    parts = split(tmp_path / "genuine" / "payload.age", tmp_path / "bundle", cuts)
    split(tmp_path / "evil" / "payload.age", tmp_path / "swap", cuts)

    checked = check_parts(tmp_path / "bundle", parts)
    for part in parts:  # while the identity is unlocked, the attacker swaps every part
        os.replace(tmp_path / "swap" / part.name, tmp_path / "bundle" / part.name)
    seen = Recorder(allowed_of([blob]))
    dest = tmp_path / "dest"
    dest.mkdir()
    result = read_payload(checked, [identity], dest, seen)

    assert seen.calls == [dict(METADATA)], "the swapped-in bytes were decrypted and parsed"
    assert result.blobs[blob.sha256].read_bytes() == blob.path.read_bytes()
    assert all(handle.closed for handle in checked.files)


def test_a_part_written_in_place_after_the_check_is_refused_as_changed(
    tmp_path: Path, identity: Any, blob: BlobSource
) -> None:
    recipient = str(identity.to_public())
    write_payload(tmp_path / "genuine", METADATA, [blob], [recipient])
    parts = split(tmp_path / "genuine" / "payload.age", tmp_path / "bundle", 3)

    checked = check_parts(tmp_path / "bundle", parts)
    with open(tmp_path / "bundle" / parts[2].name, "r+b") as handle:  # same file, new bytes
        handle.seek(parts[2].size // 2)
        handle.write(b"\x00" * 64)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(IntegrityError, match=r"payload part payload\.age\.002 changed on the"):
        read_payload(checked, [identity], dest, Recorder(allowed_of([blob])))
    assert list(dest.iterdir()) == []
    assert all(handle.closed for handle in checked.files)


def test_a_failed_check_closes_every_part(tmp_path: Path, identity: Any, blob: BlobSource) -> None:
    write_payload(tmp_path / "genuine", METADATA, [blob], [str(identity.to_public())])
    parts = split(tmp_path / "genuine" / "payload.age", tmp_path / "bundle", 3)
    last = parts[-1]
    parts[-1] = PayloadPart(last.name, last.size, "0" * 64)
    fds_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(IntegrityError, match=r"payload\.age\.002 does not match the SHA-256"):
        check_parts(tmp_path / "bundle", parts)
    assert len(os.listdir("/proc/self/fd")) == fds_before


def test_a_symlinked_part_is_refused_with_a_hint(
    tmp_path: Path, identity: Any, blob: BlobSource
) -> None:
    write_payload(tmp_path / "genuine", METADATA, [blob], [str(identity.to_public())])
    [part] = split(tmp_path / "genuine" / "payload.age", tmp_path / "bundle", 1)
    (tmp_path / "bundle" / "payload.age").rename(tmp_path / "elsewhere")
    (tmp_path / "bundle" / "payload.age").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(
        MediaError, match=r"payload part payload\.age is not a regular file"
    ) as info:
        check_parts(tmp_path / "bundle", [part])
    assert "plain files" in info.value.hint


def test_a_fifo_part_is_refused_at_once_not_waited_on(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    os.mkfifo(bundle / "payload.age")
    part = PayloadPart("payload.age", 10, "0" * 64)
    outcome: list[BaseException] = []

    def check() -> None:
        try:
            check_parts(bundle, [part])
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=check, daemon=True)
    worker.start()
    worker.join(timeout=10)
    if worker.is_alive():  # unblock the open so the thread ends, then fail
        with open(bundle / "payload.age", "wb"):
            pass
        pytest.fail("check_parts waited on a FIFO")
    [error] = outcome
    assert isinstance(error, MediaError) and "not a regular file" in error.message and error.hint
