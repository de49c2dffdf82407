"""The resumable state of an assembly: which entries of which volume are verified.

Two slot files in the private state directory, ``state.0`` and ``state.1``,
written in turn in place (one ``pwrite``, no rename: a checkpoint costs no
directory or journal work, which under heavy write-back took milliseconds);
each holds a sequence number and the SHA-256 of its JSON. The newest slot whose
digest matches wins, so after a kill -9, or a write torn by a crash, the state is
the last complete save, never a torn one. It records, per data volume, a bitmap
of verified chunk entries and the bitmap as of the last fsync of the ``.part``
files ("synced"), the damage seen per volume, and the boot id of the machine
that wrote it.

Checkpoints are cheap (no fsync): a kill -9 leaves the written ``.part`` bytes
in the page cache, which the next run on the same boot may trust. After a
reboot (another boot id) only the synced bits are trusted as they are; chunks
verified since the last fsync are hashed again from the ``.part`` files and kept
only if they still match (see ``Assembler``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SLOTS = ("state.0", "state.1")
STATE_FORMAT = "airlock-assembly/1"
_SLOT_MAGIC = b"airlock-assembly-slot/1"
_PAGE = 4096
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    """This boot's id (empty when the system does not say: then every run is a new boot)."""
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return ""


class Bits:
    """A fixed-size bitmap."""

    def __init__(self, size: int, data: bytes | None = None) -> None:
        self.size = size
        self.data = bytearray(data) if data is not None else bytearray(-(-size // 8))
        if len(self.data) != -(-size // 8):
            raise ValueError("bitmap of the wrong length")

    def __getitem__(self, i: int) -> bool:
        return bool(self.data[i >> 3] & (1 << (i & 7)))

    def set(self, i: int) -> None:
        """Sets bit ``i``."""
        self.data[i >> 3] |= 1 << (i & 7)

    def clear(self, i: int) -> None:
        """Clears bit ``i``."""
        self.data[i >> 3] &= ~(1 << (i & 7)) & 0xFF

    def count(self) -> int:
        """Bits set."""
        return sum(bin(b).count("1") for b in self.data)

    def all(self) -> bool:
        """Whether every bit is set."""
        return self.count() == self.size

    def copy(self) -> Bits:
        """An independent copy."""
        return Bits(self.size, bytes(self.data))

    def encode(self) -> str:
        """Base64 text."""
        return base64.b64encode(bytes(self.data)).decode("ascii")

    @classmethod
    def decode(cls, size: int, text: str) -> Bits:
        """Parses :meth:`encode` output (ValueError when it does not fit ``size``)."""
        return cls(size, base64.b64decode(text.encode("ascii"), validate=True))


@dataclass
class VolumeState:
    """What is known about one volume (data or parity)."""

    done: Bits
    synced: Bits
    damage: list[str] = field(default_factory=list)
    rebuilt: bool = False


@dataclass
class State:
    """The whole state (see the module docstring)."""

    plan: str
    volumes: dict[str, VolumeState]
    boot: str = ""
    sequence: int = 0

    def to_json(self) -> bytes:
        """The file's bytes."""
        doc: dict[str, Any] = {
            "format": STATE_FORMAT,
            "plan": self.plan,
            "boot_id": self.boot,
            "volumes": {
                name: {
                    "done": v.done.encode(),
                    "synced": v.synced.encode(),
                    "damage": v.damage,
                    "rebuilt": v.rebuilt,
                }
                for name, v in sorted(self.volumes.items())
            },
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def fresh_state(plan: str, sizes: dict[str, int]) -> State:
    """A state where nothing is verified: ``sizes`` is volume name -> number of chunk entries."""
    volumes = {name: VolumeState(Bits(n), Bits(n)) for name, n in sizes.items()}
    return State(plan=plan, volumes=volumes, boot=boot_id())


def _read_slot(path: Path) -> tuple[int, Any] | None:
    """``(sequence, document)`` of a slot, or None when it is absent, torn or damaged."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head, _, body = data.partition(b"\n")
    fields = head.split(b" ")
    if len(fields) != 3 or fields[0] != _SLOT_MAGIC or not fields[1].isdigit():
        return None
    body = body.rstrip(b" ")
    if hashlib.sha256(body).hexdigest().encode() != fields[2]:
        return None
    try:
        return int(fields[1]), json.loads(body)
    except ValueError:
        return None


def newest_document(directory: Path) -> Any:
    """The newest complete saved state as JSON data (None when there is none)."""
    slots = [slot for name in SLOTS if (slot := _read_slot(directory / name)) is not None]
    return max(slots, key=lambda slot: slot[0])[1] if slots else None


def load_state(directory: Path, plan: str, sizes: dict[str, int]) -> State | None:
    """The newest complete saved state, or None when there is none.

    A slot that does not parse is not used (after a crash of the machine that may
    mean starting over, which is safe).

    Raises:
        ValueError: the state is of another plan (the directory belongs to another bundle).
    """
    slots = [slot for name in SLOTS if (slot := _read_slot(directory / name)) is not None]
    if not slots:
        return None
    sequence, doc = max(slots, key=lambda slot: slot[0])
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
        return None
    if doc.get("plan") != plan:
        raise ValueError("the state directory holds the state of another bundle")
    try:
        volumes = {}
        for name, n in sizes.items():
            item = doc["volumes"][name]
            volumes[name] = VolumeState(
                done=Bits.decode(n, item["done"]),
                synced=Bits.decode(n, item["synced"]),
                damage=[str(d) for d in item["damage"]],
                rebuilt=bool(item["rebuilt"]),
            )
        return State(plan=plan, volumes=volumes, boot=str(doc["boot_id"]), sequence=sequence)
    except (KeyError, TypeError, ValueError):
        return None


def save_state(directory: Path, state: State, durable: bool = False) -> None:
    """Writes the state into the older slot, in place; with ``durable``, fsyncs it too."""
    state.sequence += 1
    body = state.to_json()
    head = b"%s %d %s\n" % (_SLOT_MAGIC, state.sequence, hashlib.sha256(body).hexdigest().encode())
    data = head + body
    data += b" " * (-len(data) % _PAGE)  # same size from save to save: no metadata change
    path = directory / SLOTS[state.sequence % 2]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        view = memoryview(data)
        offset = 0
        while offset < len(view):
            offset += os.pwrite(fd, view[offset:], offset)
        if os.fstat(fd).st_size > len(data):
            os.ftruncate(fd, len(data))
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    if durable:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
