"""Throughput of airlock.bundles.agestream vs the stock age binary (and pyrage).

Measured on ``--size-mib`` MiB (default 256) of random bytes held in memory, best of
``--repeat`` rounds, side by side in one run (a noisy 2-vCPU VM: compare within a run):

* ``encrypt_chunks`` — 1 MiB runs sealed into a preallocated buffer, one thread, then
  two threads each sealing half the file (the volume pipeline's building block);
* ``AgeWriter`` — 1 MiB ``write`` calls, output to ``/dev/null`` (raw fd);
* ``AgeReader`` — 1 MiB ``readinto`` calls from an in-memory ciphertext (BytesIO), one
  reader, then two readers on two threads each reading half (``seek_chunk``);
* ``AgeReader`` on a raw fd of the ciphertext file (page cache, ``pread``), 1 and 2 threads;
* ``age -r R < file > /dev/null`` and ``age -d -i K < file.age > /dev/null`` with the
  input in the page cache (a file under /tmp), and ``pyrage.encrypt``/``decrypt``.

Usage: ``python bench/bench_agestream.py [--size-mib 256] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyrage
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from airlock.bundles.agestream import (
    CIPHER_CHUNK,
    PLAIN_CHUNK,
    AgeReader,
    AgeWriter,
    encrypt_chunks,
    generate_identity,
    identity_text,
    recipient_of,
    start_file,
)

RUN = 16  # chunks per call: 1 MiB


def best(rounds: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def in_threads(*jobs: Callable[[], object]) -> None:
    threads = [threading.Thread(target=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    mib = args.size_mib
    data = os.urandom(mib << 20)
    identity = generate_identity()
    recipient = recipient_of(identity)
    head, key = start_file([recipient])
    n_chunks = len(data) // PLAIN_CHUNK
    sealed = bytearray(n_chunks * CIPHER_CHUNK)
    results: dict[str, float] = {}

    def seal_span(first: int, end: int) -> None:
        aead = ChaCha20Poly1305(key)
        src, dst = memoryview(data), memoryview(sealed)
        for at in range(first, end, RUN):
            stop = min(at + RUN, end)
            final = stop == n_chunks
            piece = src[at * PLAIN_CHUNK : stop * PLAIN_CHUNK]
            encrypt_chunks(aead, at, piece, dst[at * CIPHER_CHUNK :], final=final)

    half = n_chunks // 2
    results["encrypt_chunks, 1 thread"] = best(args.repeat, lambda: seal_span(0, n_chunks))
    results["encrypt_chunks, 2 threads"] = best(
        args.repeat,
        lambda: in_threads(lambda: seal_span(0, half), lambda: seal_span(half, n_chunks)),
    )

    def writer_run() -> None:
        fd = os.open(os.devnull, os.O_WRONLY)
        try:
            with AgeWriter(fd, [recipient]) as writer:
                view = memoryview(data)
                for at in range(0, len(data), 1 << 20):
                    writer.write(view[at : at + (1 << 20)])
        finally:
            os.close(fd)

    results["AgeWriter -> /dev/null, 1 thread"] = best(args.repeat, writer_run)

    blob = head + bytes(sealed)

    def read_span(first: int, end: int) -> None:
        reader = AgeReader(io.BytesIO(blob), [identity])
        reader.seek_chunk(first)
        buffer = bytearray(1 << 20)
        left = (end - first) * PLAIN_CHUNK
        while left > 0:
            left -= reader.readinto(buffer)

    results["AgeReader, 1 thread"] = best(args.repeat, lambda: read_span(0, n_chunks))
    results["AgeReader, 2 threads"] = best(
        args.repeat,
        lambda: in_threads(lambda: read_span(0, half), lambda: read_span(half, n_chunks)),
    )
    with tempfile.TemporaryDirectory(prefix="agestream-bench-") as tmp:
        plain, enc, key_file = Path(tmp, "plain"), Path(tmp, "plain.age"), Path(tmp, "key")
        plain.write_bytes(data)
        enc.write_bytes(blob)
        key_file.write_text(identity_text(identity) + "\n")

        def age(cmd: list[str], src: Path) -> None:
            with open(src, "rb") as fin, open(os.devnull, "wb") as fout:
                subprocess.run(cmd, stdin=fin, stdout=fout, check=True)

        def read_file_span(first: int, end: int) -> None:
            fd = os.open(enc, os.O_RDONLY)
            try:
                reader = AgeReader(fd, [identity])
                reader.seek_chunk(first)
                buffer = bytearray(1 << 20)
                left = (end - first) * PLAIN_CHUNK
                while left > 0:
                    left -= reader.readinto(buffer)
            finally:
                os.close(fd)

        results["AgeReader on a file fd, 1 thread"] = best(
            args.repeat, lambda: read_file_span(0, n_chunks)
        )
        results["AgeReader on a file fd, 2 threads"] = best(
            args.repeat,
            lambda: in_threads(
                lambda: read_file_span(0, half), lambda: read_file_span(half, n_chunks)
            ),
        )
        results["age -r (binary)"] = best(args.repeat, lambda: age(["age", "-r", recipient], plain))
        results["age -d (binary)"] = best(
            args.repeat, lambda: age(["age", "-d", "-i", str(key_file)], enc)
        )
    pyrage_recipient = pyrage.x25519.Recipient.from_str(recipient)
    pyrage_identity = pyrage.x25519.Identity.from_str(identity_text(identity))
    results["pyrage.encrypt"] = best(1, lambda: pyrage.encrypt(data, [pyrage_recipient]))
    results["pyrage.decrypt"] = best(1, lambda: pyrage.decrypt(blob, [pyrage_identity]))
    print(f"{mib} MiB in memory, best of {args.repeat} (pyrage: 1 round)")
    for name, seconds in results.items():
        print(f"  {name:36s} {mib / seconds:8.0f} MiB/s  ({seconds:.3f} s)")


if __name__ == "__main__":
    main()
