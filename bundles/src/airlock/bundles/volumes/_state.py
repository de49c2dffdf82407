"""The resumable state of an assembly: which entries of which volume are verified.

``state.json`` in the private state directory, replaced atomically (temporary
file, then ``rename``): after a kill -9 it is the old or the new version, never
a torn one. It records, per data volume, a bitmap of verified chunk entries and
the bitmap as of the last fsync of the ``.part`` files ("synced"), the damage
seen per volume, and the boot id of the machine that wrote it.

Checkpoints are cheap (no fsync): a kill -9 leaves the written ``.part`` bytes
in the page cache, which the next run on the same boot may trust. After a
reboot (another boot id) only the synced bits are trusted as they are; chunks
verified since the last fsync are hashed again from the ``.part`` files and kept
only if they still match (see ``Assembler``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
STATE_FORMAT = "airlock-assembly/1"
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


def load_state(directory: Path, plan: str, sizes: dict[str, int]) -> State | None:
    """The saved state, or None when there is none.

    A state saved for another plan, or one that does not parse, is not used (None);
    the caller decides (the state directory belongs to one bundle).

    Raises:
        ValueError: the file exists but is for another plan.
    """
    path = directory / STATE_FILE
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # unreadable after a crash of the machine: start over (safe)
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
        return State(plan=plan, volumes=volumes, boot=str(doc["boot_id"]))
    except (KeyError, TypeError, ValueError):
        return None


def save_state(directory: Path, state: State, durable: bool = False) -> None:
    """Replaces ``state.json`` atomically; with ``durable``, also fsyncs it and the directory."""
    data = state.to_json()
    fd, tmp = tempfile.mkstemp(prefix=".state.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        Path(tmp).replace(directory / STATE_FILE)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise
    if durable:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
