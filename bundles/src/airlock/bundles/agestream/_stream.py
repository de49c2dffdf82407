"""The age payload: STREAM chunks of ChaCha20-Poly1305, sizes, and the chunk-batch calls.

Spec (C2SP age, "Payload"): after the header comes a 16-byte random nonce; the payload
key is HKDF-SHA-256(file key, salt = that nonce, info "payload"). The plaintext is cut
into 64 KiB chunks, each sealed with ChaCha20-Poly1305 under the 12-byte nonce
``11-byte big-endian chunk counter || flag`` where flag is 0x01 on the final chunk
and 0x00 before it. The final chunk may be full; it is empty only when the whole
plaintext is empty.

:func:`encrypt_chunks` and :func:`decrypt_chunks` seal or open a whole run of chunks
(typically 16 = 1 MiB) from one buffer into another: one Python call per run, one
``encrypt_into``/``decrypt_into`` per chunk (each releases the GIL), no copies, the
nonce built by ``int.to_bytes``. They keep no state, so two threads may work on
different runs of one file at once (give each thread its own ``ChaCha20Poly1305``
object: making one costs microseconds).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from airlock.bundles.agestream._header import FOOTER, INTRO, MAC_CHARS
from airlock.bundles.errors import DecryptionError, UsageError

PLAIN_CHUNK = 65536
TAG_BYTES = 16
CIPHER_CHUNK = PLAIN_CHUNK + TAG_BYTES
NONCE_BYTES = 16
MAX_COUNTER = 1 << 88
X25519_STANZA_BYTES = len(b"-> X25519 ") + 43 + 1 + 43 + 1
"""One X25519 stanza as this writer emits it: 43-character share, 43-character body."""

DAMAGED_HINT = (
    "the file was changed, cut short or extended after it was written: copy it again "
    "from the medium, or ask the sender for a new copy"
)


def header_size(n_recipients: int) -> int:
    """The exact length of the header this writer emits, the 16-byte payload nonce included."""
    if n_recipients < 1:
        raise UsageError("an age file needs at least one recipient")
    footer = len(FOOTER) + 1 + MAC_CHARS + 1
    return len(INTRO) + n_recipients * X25519_STANZA_BYTES + footer + NONCE_BYTES


def chunk_count(plain_len: int) -> int:
    """How many STREAM chunks a plaintext of ``plain_len`` bytes takes (at least one)."""
    if plain_len < 0:
        raise ValueError("negative length")
    return max(1, -(-plain_len // PLAIN_CHUNK))


def encrypted_size(plain_len: int, n_recipients: int) -> int:
    """The exact size of the age file this writer makes of ``plain_len`` bytes."""
    return header_size(n_recipients) + plain_len + TAG_BYTES * chunk_count(plain_len)


def plain_capacity(file_size: int, n_recipients: int) -> int:
    """The largest plaintext whose age file (to ``n_recipients``) is at most ``file_size``.

    Raises:
        UsageError: ``file_size`` cannot hold even an empty age file.
    """
    payload = file_size - header_size(n_recipients)
    if payload < TAG_BYTES:
        raise UsageError(
            f"{file_size} bytes cannot hold an age file to {n_recipients} recipient(s)",
            f"allow at least {header_size(n_recipients) + TAG_BYTES} bytes",
        )
    full, rest = divmod(payload, CIPHER_CHUNK)
    if rest > TAG_BYTES:
        return full * PLAIN_CHUNK + rest - TAG_BYTES
    return full * PLAIN_CHUNK  # the last chunk is full; a remainder of <= 16 bytes stays unused


def chunk_nonce(counter: int, final: bool) -> bytes:
    """The 12-byte ChaCha20-Poly1305 nonce of chunk ``counter``."""
    return ((counter << 8) | final).to_bytes(12, "big")


def _check_counter(counter: int, n_chunks: int) -> None:
    if counter < 0 or counter + n_chunks > MAX_COUNTER:
        raise ValueError("STREAM chunk counter out of range")


def encrypt_chunks(
    cipher: ChaCha20Poly1305,
    counter: int,
    src: memoryview | bytes | bytearray,
    dst: memoryview | bytearray,
    *,
    final: bool = False,
) -> int:
    """Seals ``src`` as chunks ``counter``, ``counter + 1``, … into ``dst``; returns bytes written.

    Args:
        cipher: ``ChaCha20Poly1305(payload key)``.
        counter: The index of the first chunk (its plaintext starts at ``counter * 64 KiB``).
        src: Without ``final``, whole 64 KiB chunks (a multiple of 65,536 bytes). With
            ``final``, any length: its last chunk (short or full) is sealed as the final
            one; empty only when ``counter`` is 0 (the empty file's one empty chunk).
        dst: At least ``len(src) + 16 * chunks`` bytes; written from its start.
        final: Whether ``src`` ends the file. Hold the last chunk back until you know:
            a file whose length is a multiple of 64 KiB ends with a *full* final chunk.

    Raises:
        ValueError: lengths or counter that break these rules.
    """
    source = memoryview(src).cast("B")
    out = memoryview(dst).cast("B")
    size = len(source)
    if final:
        if size == 0 and counter != 0:
            raise ValueError("only an empty file has an empty final chunk")
        n_chunks = chunk_count(size)
    elif size % PLAIN_CHUNK:
        raise ValueError("encrypt_chunks without final takes whole 64 KiB chunks")
    else:
        n_chunks = size // PLAIN_CHUNK
    _check_counter(counter, n_chunks)
    total = size + TAG_BYTES * n_chunks
    if len(out) < total:
        raise ValueError(f"encrypt_chunks needs a {total}-byte output buffer")
    seal = cipher.encrypt_into
    last = n_chunks - 1
    for i in range(n_chunks):
        start = i * PLAIN_CHUNK
        chunk = source[start : start + PLAIN_CHUNK]
        at = i * CIPHER_CHUNK
        nonce = (((counter + i) << 8) | (final and i == last)).to_bytes(12, "big")
        seal(nonce, chunk, None, out[at : at + len(chunk) + TAG_BYTES])
    return total


def damaged(offset: int, detail: str = "") -> DecryptionError:
    """The error for a payload chunk that does not authenticate (at file byte ``offset``)."""
    message = f"damaged or truncated (age authentication failed) at byte offset {offset}"
    return DecryptionError(message + (f": {detail}" if detail else ""), DAMAGED_HINT)


def decrypt_chunks(
    cipher: ChaCha20Poly1305,
    counter: int,
    src: memoryview | bytes | bytearray,
    dst: memoryview | bytearray,
    *,
    final: bool = False,
    offset: int = 0,
) -> int:
    """Opens the sealed chunks in ``src`` (chunk ``counter`` first) into ``dst``; returns bytes.

    Args:
        cipher: ``ChaCha20Poly1305(payload key)``.
        counter: The index of the first chunk in ``src``.
        src: Whole sealed chunks of 65,552 bytes; with ``final`` the last may be shorter
            and is opened as the final chunk.
        dst: At least the plaintext length (``len(src) - 16 * chunks``); written from its start.
        final: Whether ``src`` ends the file.
        offset: The file offset of ``src[0]``, for the error message.

    Raises:
        DecryptionError: a chunk fails authentication (the message names its byte offset);
            a missing or empty-after-data final chunk. The plaintext of a failed chunk is
            wiped from ``dst``; what came before it in ``dst`` is authentic.
    """
    source = memoryview(src).cast("B")
    out = memoryview(dst).cast("B")
    size = len(source)
    n_chunks, tail = divmod(size, CIPHER_CHUNK)
    if final:
        if tail:
            n_chunks += 1
        if n_chunks == 0:
            raise damaged(offset, "the final chunk is missing")
        last_len = size - (n_chunks - 1) * CIPHER_CHUNK
        if last_len < TAG_BYTES:
            raise damaged(offset + size - last_len, "the final chunk is cut short")
        if last_len == TAG_BYTES and counter + n_chunks > 1:
            raise damaged(offset + size - last_len, "an empty final chunk after data")
    elif tail:
        raise ValueError("decrypt_chunks without final takes whole sealed chunks")
    _check_counter(counter, n_chunks)
    total = size - TAG_BYTES * n_chunks
    if len(out) < total:
        raise ValueError(f"decrypt_chunks needs a {total}-byte output buffer")
    open_ = cipher.decrypt_into
    last = n_chunks - 1
    for i in range(n_chunks):
        at = i * CIPHER_CHUNK
        sealed = source[at : at + CIPHER_CHUNK]
        start = i * PLAIN_CHUNK
        target = out[start : start + len(sealed) - TAG_BYTES]
        nonce = (((counter + i) << 8) | (final and i == last)).to_bytes(12, "big")
        try:
            open_(nonce, sealed, None, target)
        except InvalidTag:
            target[:] = bytes(len(target))
            raise damaged(offset + at) from None
    return total
