"""The textual age v1 header: stanzas, the header MAC, and a strict parser.

Layout (C2SP age spec, "Header")::

    age-encryption.org/v1\\n
    -> TYPE ARG…\\n          one or more stanzas; the body is unpadded base64 in
    BODY LINE (64 columns)\\n  full 64-column lines and a final shorter line (which
    FINAL LINE (< 64)\\n       is empty when the body is a multiple of 48 bytes)
    --- MAC\\n               HMAC-SHA256(HKDF(file key, "", "header")) over every
                            byte up to and including "---"

Parsing is strict where the spec says MUST: canonical unpadded base64 only, arguments
of visible ASCII separated by single spaces, at least one stanza, a 43-character MAC.
"""

from __future__ import annotations

import base64
import hmac
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from airlock.bundles.errors import DecryptionError

INTRO = b"age-encryption.org/v1\n"
VERSION_PREFIX = b"age-encryption.org/"
FOOTER = b"---"
COLUMNS = 64
BYTES_PER_LINE = COLUMNS // 4 * 3
MAC_CHARS = 43
MAX_HEADER_BYTES = 1 << 20
"""A header longer than this is refused (ours are 86 + 98 bytes per recipient)."""

_B64 = re.compile(rb"[A-Za-z0-9+/]*")
_VCHAR = re.compile(rb"[\x21-\x7e]+")
_DAMAGED_HINT = (
    "the file is not a complete age file as written: copy it again from the medium, or "
    "ask the sender for a new copy"
)


def header_error(reason: str) -> DecryptionError:
    """The error for a header that is not well-formed age v1."""
    return DecryptionError(f"damaged age header: {reason}", _DAMAGED_HINT)


def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA-256 with a 32-byte output, as every age derivation uses."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def b64encode(data: bytes) -> bytes:
    """Standard base64 without ``=`` padding."""
    return base64.b64encode(data).rstrip(b"=")


def b64decode(text: bytes) -> bytes:
    """Decodes canonical unpadded standard base64; refuses anything else.

    Raises:
        ValueError: a character outside the alphabet, padding, or a non-canonical encoding.
    """
    if not _B64.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64")
    data = base64.b64decode(text + b"=" * (-len(text) % 4))
    if b64encode(data) != text:
        raise ValueError("non-canonical base64")
    return data


@dataclass(frozen=True)
class Stanza:
    """One recipient stanza: its arguments (the first is its type) and its body."""

    args: tuple[str, ...]
    body: bytes

    def encode(self) -> bytes:
        """The stanza's lines, body wrapped at 64 columns, ending with a short line."""
        text = b64encode(self.body)
        lines = [b"-> " + " ".join(self.args).encode("ascii")]
        lines += [text[i : i + COLUMNS] for i in range(0, len(text), COLUMNS)]
        if len(text) % COLUMNS == 0:
            lines.append(b"")
        return b"\n".join(lines) + b"\n"


def header_mac(file_key: bytes, mac_input: bytes) -> bytes:
    """HMAC-SHA-256 of the header up to and including ``---``."""
    return hmac.digest(hkdf(file_key, b"", b"header"), mac_input, "sha256")


def build_header(file_key: bytes, stanzas: list[Stanza]) -> bytes:
    """The complete header, MAC line included (the payload nonce follows it)."""
    mac_input = INTRO + b"".join(s.encode() for s in stanzas) + FOOTER
    return mac_input + b" " + b64encode(header_mac(file_key, mac_input)) + b"\n"


@dataclass(frozen=True)
class ParsedHeader:
    """A well-formed (not yet authenticated) header.

    Attributes:
        stanzas: The recipient stanzas, in order.
        mac: The 32-byte MAC it claims.
        mac_input: The bytes the MAC covers (up to and including ``---``).
        length: Its length in bytes, MAC line included (the payload nonce follows).
    """

    stanzas: tuple[Stanza, ...]
    mac: bytes
    mac_input: bytes
    length: int

    def verify(self, file_key: bytes) -> bool:
        """Whether the MAC is right for this file key (constant-time comparison)."""
        return hmac.compare_digest(header_mac(file_key, self.mac_input), self.mac)


def header_end(data: bytes, at_eof: bool) -> int | None:
    """Where the header in ``data`` (a prefix of the file) ends, or None if more is needed.

    Raises:
        DecryptionError: not an age v1 file, or the header is cut short or too long.
    """
    if not data.startswith(INTRO[: len(data)]):
        if data.startswith(VERSION_PREFIX):
            raise header_error("an age format version other than v1")
        raise DecryptionError(
            "not an age encrypted file (no age-encryption.org/v1 header)", _DAMAGED_HINT
        )
    footer = data.find(b"\n" + FOOTER, len(INTRO) - 1)
    end = -1 if footer < 0 else data.find(b"\n", footer + 1)
    if end >= 0:
        return end + 1
    if at_eof:
        raise header_error("the file ends inside the header")
    if len(data) >= MAX_HEADER_BYTES:
        raise header_error(f"longer than {MAX_HEADER_BYTES} bytes")
    return None


def _parse_body(lines: list[bytes], i: int) -> tuple[bytes, int]:
    body = bytearray()
    while True:
        if i >= len(lines) or len(lines[i]) > COLUMNS:
            raise header_error("a stanza body line is missing or longer than 64 columns")
        try:
            body += b64decode(lines[i])
        except ValueError as exc:
            raise header_error(f"a stanza body is {exc}") from None
        if len(lines[i]) < COLUMNS:
            return bytes(body), i + 1
        i += 1


def parse_header(header: bytes) -> ParsedHeader:
    """Parses a whole header (``header_end`` bytes of the file) strictly.

    Raises:
        DecryptionError: anything that is not well-formed age v1.
    """
    lines = header[len(INTRO) :].split(b"\n")[:-1]
    stanzas: list[Stanza] = []
    i = 0
    while i < len(lines) - 1:
        parts = lines[i].split(b" ")
        if parts[0] != b"->" or len(parts) < 2 or not all(_VCHAR.fullmatch(p) for p in parts[1:]):
            raise header_error("a line that is neither a stanza nor the MAC line")
        body, i = _parse_body(lines, i + 1)
        stanzas.append(Stanza(tuple(p.decode("ascii") for p in parts[1:]), body))
    if i != len(lines) - 1:
        raise header_error("a stanza body runs into the MAC line")
    if not stanzas:
        raise header_error("no recipient stanza")
    footer = lines[-1]
    if not footer.startswith(FOOTER + b" ") or len(footer) != len(FOOTER) + 1 + MAC_CHARS:
        raise header_error("a malformed MAC line")
    try:
        mac = b64decode(footer[len(FOOTER) + 1 :])
    except ValueError as exc:
        raise header_error(f"the MAC is {exc}") from None
    mac_input = header[: len(header) - len(footer) - 1 + len(FOOTER)]
    return ParsedHeader(tuple(stanzas), mac, mac_input, len(header))
