"""Chunk indexes (bundle format v2): every file's per-chunk SHA-256, bound into its signed target.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.chunks._index import (
    BINDING_KEY,
    CHUNK_SIZE,
    INDEX_FORMAT,
    ChunkIndex,
    binding,
    check_binding,
    index_file,
)

__all__ = [
    "BINDING_KEY",
    "CHUNK_SIZE",
    "INDEX_FORMAT",
    "ChunkIndex",
    "binding",
    "check_binding",
    "index_file",
]
