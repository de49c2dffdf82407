"""Turns a volume's file bytes into plaintext messages for the checker (reading thread).

Bytes arrive in file order, possibly with gaps (skipped ranges). The header is
read first; then every complete segment is decrypted straight from the input
into a 1 MiB plaintext buffer of the hand-off pool (a segment split across two
inputs is joined in a small carry buffer). A segment that does not authenticate
is reported as lost plaintext and reading goes on with the next one: age
authenticates each 64 KiB on its own, so one bad sector costs one chunk, not the
volume. Messages::

    ("plain", key, offset, buffer, count)   plaintext [offset, offset + count)
    ("lost", key, start, end, why)          plaintext that could not be read
    ("damage", key, text)                   the volume as a whole (header, size)
    ("end", key, truncated_at | None)       no more input for this volume
"""

from __future__ import annotations

from typing import Any

from airlock.bundles.volumes._cipher import (
    SEGMENT,
    AuthenticationFailed,
    Decryption,
    Geometry,
    Opener,
    segments,
)
from airlock.bundles.volumes._pipeline import Handoff
from airlock.bundles.volumes._split import SplitHasher

MAX_HEADER = 1 << 20
RUN = 16
"""Most segments opened per call (1 MiB of plaintext, one hand-off buffer)."""
AUTH_FAILED = "age authentication failed (the bytes on the medium changed)"


class CipherFeed:
    """One volume's decryption state (see the module docstring)."""

    def __init__(
        self,
        key: Any,
        decryption: Decryption,
        plain_size: int,
        handoff: Handoff,
        split: SplitHasher | None = None,
    ) -> None:
        self.key = key
        self._split = split
        self._decryption = decryption
        self._plain_size = plain_size
        self._handoff = handoff
        self._last = segments(plain_size) - 1
        self._head = bytearray()
        self._opener: Opener | None = None
        self.geometry: Geometry | None = None
        self._carry = bytearray()
        self._carry_index = -1
        self._out: bytearray | None = None
        self._out_start = 0
        self._out_len = 0
        self.reached = 0
        self.failed = False
        self._extra = False

    def _send(self, *message: Any) -> None:
        self._handoff.send(message)

    def fail(self, text: str) -> None:
        """The volume cannot be read at all (nothing more is fed)."""
        if not self.failed:
            self.failed = True
            self._send("damage", self.key, text)

    def feed(self, offset: int, data: memoryview) -> None:
        """File bytes ``[offset, offset + len(data))``."""
        if self.failed or not data:
            return
        if self._opener is None:
            if offset != len(self._head):
                self.fail("the start of the volume (its header) is missing")
                return
            self._head += data
            if not self._open_header():
                return
            assert self.geometry is not None
            start = self.geometry.header_size
            rest = memoryview(bytes(self._head[start:]))
            self._head = bytearray()
            self._segments(start, rest)
            return
        self._segments(offset, data)

    def _open_header(self) -> bool:
        try:
            length = self._decryption.header_length(bytes(self._head))
            if length is None:
                if len(self._head) > MAX_HEADER:
                    raise AuthenticationFailed("no age header in its first MiB")
                return False
            self._opener = self._decryption.opener(bytes(self._head[:length]))
        except AuthenticationFailed as exc:
            self.fail(str(exc))
            return False
        self.geometry = Geometry(length, self._opener.tag)
        return True

    def _segments(self, pos: int, view: memoryview) -> None:
        geometry = self.geometry
        assert geometry is not None
        step = geometry.cipher_segment
        header = geometry.header_size
        if self._carry:
            if pos != geometry.segment_offset(self._carry_index) + len(self._carry):
                self._carry = bytearray()
            else:
                length = self._cipher_length(self._carry_index)
                take = min(length - len(self._carry), len(view))
                self._carry += view[:take]
                view, pos = view[take:], pos + take
                if len(self._carry) < length:
                    return
                self._open(self._carry_index, 1, memoryview(self._carry))
                self._carry = bytearray()
        if pos < header:
            view, pos = view[header - pos :], header
        index, within = divmod(pos - header, step)
        if within:
            view, index = view[step - within :], index + 1
        while view:
            if index > self._last:
                if not self._extra:
                    self._extra = True
                    self._send("damage", self.key, "data after the end of its age stream")
                return
            if len(view) < self._cipher_length(index):
                self._carry = bytearray(view)
                self._carry_index = index
                return
            count = self._run_length(index, len(view))
            length = (count - 1) * step + self._cipher_length(index + count - 1)
            self._open(index, count, view[:length])
            view = view[length:]
            index += count

    def _cipher_length(self, index: int) -> int:
        assert self.geometry is not None
        if index < self._last:
            return self.geometry.cipher_segment
        return self._plain_size - self._last * SEGMENT + self.geometry.tag

    def _run_length(self, index: int, available: int) -> int:
        """How many whole segments from ``index`` are in ``available`` bytes (at most 16)."""
        assert self.geometry is not None
        count = min(available // self.geometry.cipher_segment, RUN, self._last - index)
        if index + count == self._last and available - count * self.geometry.cipher_segment >= (
            self._cipher_length(self._last)
        ):
            count += 1  # the (shorter) final segment is there too
        return max(count, 1)

    def _open(self, index: int, count: int, cipher: memoryview) -> None:
        assert self._opener is not None and self.geometry is not None
        start = index * SEGMENT
        size = len(cipher) - count * self.geometry.tag
        if self._out is not None and (
            self._out_start + self._out_len != start or self._out_len + size > len(self._out)
        ):
            self.flush()
        if self._out is None:
            self._out = self._handoff.take()
            self._out_start, self._out_len = start, 0
        out = memoryview(self._out)[self._out_len : self._out_len + size]
        final = index + count - 1 == self._last
        try:
            self._opener.open_run(index, cipher, out, final)
        except AuthenticationFailed as exc:
            good = max(exc.failed_at, 0)
            if self._split is not None and good:
                self._split.take(start, out[: good * SEGMENT])
            self._out_len += good * SEGMENT
            self.flush()
            bad = index + good
            self._send(
                "lost",
                self.key,
                bad * SEGMENT,
                min((bad + 1) * SEGMENT, self._plain_size),
                AUTH_FAILED,
            )
            rest = count - good - 1
            if rest > 0:
                at = (good + 1) * self.geometry.cipher_segment
                self._open(bad + 1, rest, cipher[at:])
        else:
            if self._split is not None:
                self._split.take(start, out)
            self._out_len += size
        self.reached = max(self.reached, start + size)

    def flush(self) -> None:
        """Sends the plaintext decrypted so far."""
        if self._out is not None:
            if self._out_len:
                self._send("plain", self.key, self._out_start, self._out, self._out_len)
            else:
                self._handoff.give_back(self._out)
            self._out = None

    def end(self, truncated: bool) -> None:
        """No more input; ``truncated``: the file ended before its last segment."""
        if self._opener is None and not self.failed:
            self.fail("the file ends before its header does (truncated)")
        self.flush()
        if self.failed:
            self._send("end", self.key, None)
            return
        self._send("end", self.key, self.reached if truncated else None)
