"""Rollout outcomes a site reports back: the versions it rolled back.

A metrics payload (:class:`~airlock.bundles.metrics._model.MetricsPayload`)
carries ``rolled_back``: every model version whose newest rollout at the site
ended rolled back (automatically, on bad health), with when. It is the site's
whole current list, not what changed since the last bundle: the hub replaces
what it holds for the site with each import. A version the site rolled back
and later rolled out completely is not on it.

The hub uses it when it picks a replacement for a revoked version
(:mod:`airlock.hub.revocation._revoke`): never a version this site reported as rolled
back. No node id or free text is carried.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airlock.bundles.clock import parse_utc
from airlock.bundles.errors import MediaError

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
"""What a model name or version in a report may look like."""
MAX_ROLLED_BACK = 1000


@dataclass(frozen=True, order=True)
class RolledBackVersion:
    """A model version whose newest rollout at the site was rolled back."""

    model: str
    version: str
    rolled_back_at: str
    """UTC time of the rollback (``2026-11-23T14:00:00Z``)."""

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {"model": self.model, "version": self.version, "rolled_back_at": self.rolled_back_at}

    @classmethod
    def from_dict(cls, data: Any) -> RolledBackVersion:
        """Parses :meth:`to_dict` output (untrusted input).

        Raises:
            MediaError: malformed.
        """
        if not isinstance(data, Mapping):
            raise MediaError("a rolled-back version is not an object")
        model, version = data.get("model"), data.get("version")
        for what, value in (("model", model), ("version", version)):
            if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
                raise MediaError(f"a rolled-back version has a malformed {what}")
        when = data.get("rolled_back_at")
        try:
            parse_utc(str(when))
        except (MediaError, ValueError):
            raise MediaError("a rolled-back version has a malformed time") from None
        assert isinstance(model, str) and isinstance(version, str)
        return cls(model, version, str(when))


def parse_rolled_back(value: Any) -> tuple[RolledBackVersion, ...]:
    """The payload's ``rolled_back`` list (absent: none), sorted, one entry per version.

    Raises:
        MediaError: not a list, too long, a malformed entry, or a version twice.
    """
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_ROLLED_BACK:
        raise MediaError("rolled_back is not a list of versions")
    parsed = sorted(RolledBackVersion.from_dict(item) for item in value)
    keys = [(item.model, item.version) for item in parsed]
    if len(set(keys)) != len(keys):
        raise MediaError("rolled_back lists a version twice")
    return tuple(parsed)
