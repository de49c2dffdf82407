"""Interrupted imports resume without reading again what was verified; exports never leave
a half-written file under a final name.

Interruptions are real: an exception raised from inside the reading thread, and a
SIGKILL of a child process (no clean-up runs). Bytes read from volume files are counted.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.volumeenv import (
    KiB,
    MiB,
    assemble,
    check_complete,
    final_names,
    write_bundle,
)

from airlock.bundles.errors import ConflictError
from airlock.bundles.volumes import Assembler, _state, find_volumes

READ = 16 * (65536 + 16)  # the first read of a volume: its header and first MiB


class Interrupted(Exception):
    pass


def _unverified_bytes(assembler: Assembler) -> int:
    """File bytes of the entries not verified yet (their share of each volume)."""
    total = 0
    for name, info in assembler.infos.items():
        done = assembler.state.volumes[name].done
        total += sum(e.end - e.offset for j, e in enumerate(info.entries) if not done[j])
    return total


def _verified_bytes(assembler: Assembler) -> int:
    total = 0
    for name, info in assembler.infos.items():
        done = assembler.state.volumes[name].done
        total += sum(e.length for j, e in enumerate(info.entries) if done[j])
    return total


def test_an_interrupted_import_resumes_where_it_stopped(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, sizes=(8 * MiB,), chunk_size=64 * KiB, volume_size=None)
    state = tmp_path / "state"

    def interrupt(count: int) -> None:
        if count >= 4 * MiB:
            raise Interrupted("the medium was pulled out")

    with pytest.raises(Interrupted):
        Assembler(
            bundle.plan(),
            _mkdir(state),
            bundle.identities,
            on_read=_adder(interrupt),
            checkpoint_bytes=256 * KiB,
        ).run(find_volumes([bundle.out], [v.name for v in bundle.written.volumes]))
    probe = Assembler(bundle.plan(), state, bundle.identities)
    verified, unverified = _verified_bytes(probe), _unverified_bytes(probe)
    assert verified >= MiB  # progress was kept
    status = probe.status()
    assert status.volumes[0].state == "partial"
    assert 0 < status.volumes[0].verified < status.volumes[0].chunks
    probe.close()
    again = assemble(bundle, state)
    check_complete(again, bundle)
    reread = again.bytes_read - unverified
    assert reread <= READ + 65552, (again.bytes_read, unverified)


def _mkdir(path: Path) -> Path:
    path.mkdir(mode=0o700)
    return path


def _adder(hook: object) -> object:
    counted = [0]

    def on_read(count: int) -> None:
        counted[0] += count
        hook(counted[0])  # type: ignore[operator]

    return on_read


CHILD = """
import os, pickle, signal, sys
from pathlib import Path
from airlock.bundles.volumes import Assembler, _state, find_volumes
plan, identities, state, names, out, kill_at = pickle.loads(Path(sys.argv[1]).read_bytes())
read = [0]
def on_read(count):
    read[0] += count
    if read[0] >= kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
Assembler(plan, Path(state), identities, on_read=on_read, checkpoint_bytes=1 << 20).run(
    find_volumes([Path(out)], names))
"""


def test_an_import_killed_with_sigkill_resumes(tmp_path: Path) -> None:
    bundle = write_bundle(
        tmp_path, sizes=(20 * MiB,), chunk_size=MiB, volume_size=7 * MiB, parity=1
    )
    state = _mkdir(tmp_path / "state")
    names = [v.name for v in bundle.written.volumes]
    job = tmp_path / "job.pickle"
    job.write_bytes(
        pickle.dumps(
            (bundle.plan(), bundle.identities, str(state), names, str(bundle.out), 12 * MiB)
        )
    )
    child = subprocess.run([sys.executable, "-c", CHILD, str(job)], capture_output=True)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    probe = Assembler(bundle.plan(), state, bundle.identities)
    verified, unverified = _verified_bytes(probe), _unverified_bytes(probe)
    probe.close()
    assert verified >= 2 * MiB
    again = assemble(bundle, state)
    check_complete(again, bundle)
    reread = again.bytes_read - unverified
    # at most the first MiB of each volume opened again (its header and airlock-volume.json)
    assert reread <= len(bundle.data()) * (READ + 65552), (again.bytes_read, unverified)


def test_after_a_reboot_unsynced_chunks_are_checked_again(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, sizes=(4 * MiB,), chunk_size=64 * KiB, volume_size=None)
    state = _mkdir(tmp_path / "state")

    def interrupt(count: int) -> None:
        if count >= 3 * MiB:
            raise Interrupted

    with pytest.raises(Interrupted):
        Assembler(
            bundle.plan(),
            state,
            bundle.identities,
            on_read=_adder(interrupt),
            checkpoint_bytes=128 * KiB,
        ).run(find_volumes([bundle.out], [v.name for v in bundle.written.volumes]))
    (sha,) = bundle.files
    part = state / "files" / f"{sha}.part"
    with open(part, "r+b") as handle:  # the power went: chunk 0 never reached the disk
        handle.write(bytes(64 * KiB))
    volume = bundle.data()[0]
    saved = _state.load_state(
        state, bundle.plan_id(), {volume.name: len(bundle.written.layout.volumes[0].chunks)}
    )
    assert saved is not None
    assert saved.volumes[volume.name].done.count() > saved.volumes[volume.name].synced.count()
    saved.boot = "another boot"
    _state.save_state(state, saved)
    again = assemble(bundle, state)
    check_complete(again, bundle)  # chunk 0 was read again, not trusted


def test_durable_checkpoints_give_the_same_result(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, sizes=(2 * MiB,), chunk_size=64 * KiB, volume_size=None)
    outcome = assemble(
        bundle, tmp_path / "state", durable_checkpoints=True, checkpoint_bytes=256 * KiB
    )
    check_complete(outcome, bundle)


def test_a_state_directory_belongs_to_one_bundle(tmp_path: Path) -> None:
    one = write_bundle(tmp_path, seed=1)
    two = write_bundle(tmp_path, seed=2)
    assemble(one, tmp_path / "state").assembler.close()
    with pytest.raises(ConflictError, match="another bundle"):
        Assembler(two.plan(), tmp_path / "state", two.identities)


def test_the_state_directory_keeps_plaintext_private(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path)
    outcome = assemble(bundle, tmp_path / "state")
    for path in (tmp_path / "state" / "files").iterdir():
        assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "state" / "files").stat().st_mode & 0o777 == 0o700
    check_complete(outcome, bundle)


WRITER = """
import os, pickle, signal, sys
from pathlib import Path
from airlock.bundles.volumes import write_series
out, spec, key, size, parity = pickle.loads(Path(sys.argv[1]).read_bytes())
class Kill:
    done = 0
    def begin(self, phase, total): pass
    def volume(self, name, number, of): pass
    def end(self): pass
    def advance(self, n):
        Kill.done += n
        if Kill.done > 6 << 20:
            os.kill(os.getpid(), signal.SIGKILL)
write_series(Path(out), spec, key, size, parity, Kill())
"""


def test_an_export_killed_with_sigkill_leaves_no_final_name(tmp_path: Path) -> None:
    from helpers.volumeenv import indexes_of, make_files

    from airlock.bundles.volumes import SeriesFile, SeriesSpec, new_name_key, new_series_id

    files = make_files(tmp_path / "blobs", [12 * MiB])
    indexes = indexes_of(files, MiB)
    spec = SeriesSpec(
        new_series_id(), None, tuple(SeriesFile(s, p, indexes[s]) for s, p in files.items())
    )
    for parity in (0, 1):
        out = tmp_path / f"out-{parity}"
        out.mkdir()
        job = tmp_path / "job.pickle"
        job.write_bytes(pickle.dumps((str(out), spec, new_name_key(), 4 * MiB, parity)))
        child = subprocess.run([sys.executable, "-c", WRITER, str(job)], capture_output=True)
        assert child.returncode == -signal.SIGKILL, child.stderr.decode()
        assert final_names(out) == []  # only .<name>.tmp temporaries
        assert any(p.name.endswith(".tmp") for p in out.iterdir())
    assert os.path.exists(tmp_path / "out-1")
