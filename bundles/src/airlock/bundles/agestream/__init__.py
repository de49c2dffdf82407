"""Streaming age v1 (age-encryption.org/v1) over ``cryptography``: seekable, GIL-friendly.

Files are standard age files to X25519 recipients: the stock ``age -d -i`` decrypts what
:class:`AgeWriter` writes, and :class:`AgeReader` decrypts what ``age -r`` writes. Unlike
pyrage, every ChaCha20-Poly1305 call releases the GIL (two threads use two cores), and a
reader can start at any 64 KiB chunk (resume).

* :class:`AgeWriter` — ``write()`` any amount, ``close()`` seals the final chunk.
* :class:`AgeReader` — an ``io.RawIOBase`` of authenticated plaintext; opening checks the
  header MAC, the payload's shape and its final chunk; ``seek_chunk(i)`` for random access.
* Sizes: :func:`header_size`, :func:`encrypted_size`, :func:`plain_capacity` are exact for
  the files this writer makes (what a volume of bounded size can hold).
* For the two-thread pipeline (thread A reads, hashes and builds the tar in 1 MiB
  buffers; thread B encrypts and writes), ``AgeWriter.write`` in thread B is enough:
  whole chunks are sealed straight from the caller's buffer (reusable once ``write``
  returns), the AEAD calls and ``os.write`` release the GIL, and a volume's plaintext
  bound is :func:`plain_capacity`. Reading: ``AgeReader.readinto`` of 1 MiB on a raw
  fd (``pread`` + ``decrypt_into``, both releasing the GIL) in thread A, hashing in B.
* For a pipeline that encrypts on two threads: :func:`start_file` gives the header bytes
  and the payload key; :func:`encrypt_chunks` seals a run of whole 64 KiB chunks (e.g.
  16 = 1 MiB) at a given chunk counter into a preallocated buffer in one call, keeping
  no state, so threads may seal different runs of one file concurrently and write them
  in counter order. The last chunk must be held back and sealed with ``final=True``
  (it may be full). :func:`decrypt_chunks` is the reverse.

Errors are :class:`~airlock.bundles.errors.DecryptionError` ("not encrypted to this
identity", "damaged or truncated (age authentication failed) at byte offset N", "damaged
age header: …") or :class:`~airlock.bundles.errors.UsageError` (bad key text); messages
never carry key material or plaintext.
"""

from airlock.bundles.agestream._keys import (
    generate_identity,
    identity_text,
    parse_identity,
    parse_recipient,
    recipient_of,
    recipient_text,
)
from airlock.bundles.agestream._reader import AgeReader
from airlock.bundles.agestream._stream import (
    CIPHER_CHUNK,
    PLAIN_CHUNK,
    decrypt_chunks,
    encrypt_chunks,
    encrypted_size,
    header_size,
    plain_capacity,
)
from airlock.bundles.agestream._writer import AgeWriter, start_file

__all__ = [
    "CIPHER_CHUNK",
    "PLAIN_CHUNK",
    "AgeReader",
    "AgeWriter",
    "decrypt_chunks",
    "encrypt_chunks",
    "encrypted_size",
    "generate_identity",
    "header_size",
    "identity_text",
    "parse_identity",
    "parse_recipient",
    "plain_capacity",
    "recipient_of",
    "recipient_text",
    "start_file",
]
