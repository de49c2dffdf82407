"""The names every model checks: model and file names, site ids, bundle ids, digests."""

from __future__ import annotations

import re

from airlock.bundles.errors import UsageError

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SITE_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
BUNDLE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", re.ASCII)
FORMAT_VERSION = 1
"""The format of metrics bundles, and of hub bundles written by the previous release."""
BUNDLE_FORMAT = 2
"""The format a hub writes its bundles in (volumes; docs/bundle-format.md)."""
FORMAT_VERSIONS = (1, 2)
"""The formats a receiver reads (format 1 for one more release)."""
HUB_SOURCE = "hub"
"""The envelope ``source`` of every bundle a hub exports (full, delta, revocation)."""
ENVELOPE_HINT = "the envelope.json is damaged or not an Airlock bundle; export it again"


def check_name(kind: str, value: str) -> str:
    """Validates a model name, version or file name (one safe path segment).

    Raises:
        UsageError: the value is empty, too long, or has characters outside ``A-Za-z0-9._-``.
    """
    if not NAME_PATTERN.fullmatch(value) or value in {".", ".."}:
        raise UsageError(
            f"invalid {kind} {value!r}",
            hint="use 1-128 characters from A-Z a-z 0-9 . _ - starting with a letter or digit",
        )
    return value


def check_site_id(value: str) -> str:
    """Validates a site id (lower-case letters, digits and dashes, max 63).

    Raises:
        UsageError: the site id is not in that form.
    """
    if not SITE_PATTERN.fullmatch(value):
        raise UsageError(
            f"invalid site id {value!r}",
            hint="use 1-63 characters from a-z 0-9 - starting with a letter or digit",
        )
    return value
