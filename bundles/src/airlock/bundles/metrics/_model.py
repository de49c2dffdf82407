"""What a site sends back to the hub: the typed model of a metrics bundle's payload.

A metrics payload (``airlock-metrics/v1``, JSON inside ``payload.age``) holds:

- ``cells`` (:class:`MetricsCell`): per model version, ring and time window,
  the figures of every node in that group added together — request and error
  counts, a mergeable latency sketch (:mod:`airlock.bundles.metrics._sketch`), counts
  per predicted class and a confidence histogram — and how many nodes
  contributed (never which);
- ``totals`` (:class:`MetricsTotal`): per model version and window, the
  site-wide counts across rings;
- what was held back: the k of the k-anonymity rule, how many cells and totals
  were suppressed, and the noise applied (:class:`NoiseSpec`), if any;
- the site's newest audit checkpoint (a signed note) and consistency proofs
  (:class:`ConsistencyProof`) from the checkpoints the hub may have seen last;
- ``rolled_back``: the versions whose newest rollout at the site was rolled
  back (:mod:`airlock.bundles.metrics._outcomes`; absent in older bundles).

:class:`ReturnPath` is the Director targets field (``x-airlock-return``) by
which the hub tells a site where metrics go (the hub's age recipient), which
witness key cosigns the site's checkpoints, and the checkpoint it last
acknowledged.

``from_dict`` runs on untrusted input and raises
:class:`~airlock.bundles.errors.MediaError` for anything malformed.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airlock.bundles.errors import MediaError, VerificationError
from airlock.bundles.metrics._figures import (
    MetricsCell,
    MetricsTotal,
    count_field,
    time_field,
)
from airlock.bundles.metrics._outcomes import RolledBackVersion, parse_rolled_back

METRICS_FORMAT = "airlock-metrics/v1"
RETURN_FIELD = "x-airlock-return"
DEFAULT_K = 5
NOISE_FAMILIES = ("requests", "errors", "latency", "predictions", "confidence", "shadow")
"""The count families noise is applied to; each request adds to each family at most once."""


@dataclass(frozen=True)
class NoiseSpec:
    """The differential-privacy noise one export applied to its counts.

    ``epsilon`` is the export's whole budget; each count family of
    :data:`NOISE_FAMILIES` got ``epsilon / len(families)`` (sequential
    composition; cells are disjoint, so within a family composition is
    parallel). Sensitivity is 1 per family: one event — one model run for
    requests, errors and latency, one answered row for predictions,
    confidence and shadow comparisons — changes a family's counts by at most
    1 (see :mod:`airlock.spoke.metrics._noise` for exactly what is protected).
    """

    epsilon: float
    mechanism: str = "discrete-laplace"
    families: tuple[str, ...] = NOISE_FAMILIES

    def __post_init__(self) -> None:
        if not (math.isfinite(self.epsilon) and 0 < self.epsilon <= 100):
            raise MediaError(f"noise epsilon {self.epsilon!r} is not in (0, 100]")

    @property
    def family_epsilon(self) -> float:
        """The budget of each count family."""
        return self.epsilon / len(self.families)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "epsilon": self.epsilon,
            "mechanism": self.mechanism,
            "families": list(self.families),
            "family_epsilon": self.family_epsilon,
            "sensitivity": 1,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NoiseSpec:
        """Parses :meth:`to_dict` output (MediaError when malformed)."""
        try:
            return cls(
                epsilon=float(data["epsilon"]),
                mechanism=str(data.get("mechanism", "discrete-laplace")),
                families=tuple(str(f) for f in data.get("families") or NOISE_FAMILIES),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MediaError(f"malformed noise record: {exc}") from None


@dataclass(frozen=True)
class ConsistencyProof:
    """An RFC 6962 consistency proof between two sizes of the site's audit log."""

    old_size: int
    new_size: int
    hashes: tuple[bytes, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (hashes in base64)."""
        return {
            "old_size": self.old_size,
            "new_size": self.new_size,
            "hashes": [base64.b64encode(h).decode("ascii") for h in self.hashes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConsistencyProof:
        """Parses :meth:`to_dict` output (MediaError when malformed)."""
        try:
            hashes = tuple(base64.b64decode(str(h), validate=True) for h in data["hashes"])
            proof = cls(int(data["old_size"]), int(data["new_size"]), hashes)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise MediaError(f"malformed consistency proof: {exc}") from None
        if not 0 <= proof.old_size <= proof.new_size or len(hashes) > 128:
            raise MediaError("malformed consistency proof: bad sizes or too many hashes")
        return proof


@dataclass(frozen=True)
class MetricsPayload:
    """Everything a metrics bundle carries, encrypted to the hub."""

    site_id: str
    sequence: int
    created: str
    window_start: str
    window_end: str
    window_minutes: int
    k: int
    cells: tuple[MetricsCell, ...] = ()
    totals: tuple[MetricsTotal, ...] = ()
    suppressed_cells: int = 0
    suppressed_totals: int = 0
    noise: NoiseSpec | None = None
    checkpoint: str = ""
    """The site's newest audit checkpoint (signed note, site key, origin ``airlock/spoke/<id>``)."""
    consistency: tuple[ConsistencyProof, ...] = ()
    """Proofs from each checkpoint the hub may have acknowledged last to ``checkpoint``."""
    rolled_back: tuple[RolledBackVersion, ...] = ()
    """The versions whose newest rollout at the site was rolled back (the whole list)."""
    format: str = METRICS_FORMAT

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "format": self.format,
            "site_id": self.site_id,
            "sequence": self.sequence,
            "created": self.created,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "window_minutes": self.window_minutes,
            "k": self.k,
            "cells": [c.to_dict() for c in self.cells],
            "totals": [t.to_dict() for t in self.totals],
            "suppressed_cells": self.suppressed_cells,
            "suppressed_totals": self.suppressed_totals,
            "noise": self.noise.to_dict() if self.noise else None,
            "checkpoint": self.checkpoint,
            "consistency": [p.to_dict() for p in self.consistency],
            "rolled_back": [r.to_dict() for r in self.rolled_back],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricsPayload:
        """Parses :meth:`to_dict` output and checks it keeps its own k-anonymity.

        Raises:
            MediaError: malformed, or of another format.
            VerificationError: see :meth:`check_anonymity`.
        """
        if not isinstance(data, Mapping) or data.get("format") != METRICS_FORMAT:
            raise MediaError(
                "the payload is not an airlock-metrics/v1 document",
                hint="the bundle was made by an incompatible Airlock version",
            )
        try:
            noise = data.get("noise")
            payload = cls(
                site_id=str(data["site_id"]),
                sequence=int(data["sequence"]),
                created=time_field(data, "created"),
                window_start=time_field(data, "window_start"),
                window_end=time_field(data, "window_end"),
                window_minutes=int(data["window_minutes"]),
                k=int(data["k"]),
                cells=tuple(MetricsCell.from_dict(c) for c in data.get("cells") or []),
                totals=tuple(MetricsTotal.from_dict(t) for t in data.get("totals") or []),
                suppressed_cells=count_field(data, "suppressed_cells"),
                suppressed_totals=count_field(data, "suppressed_totals"),
                noise=NoiseSpec.from_dict(noise) if noise else None,
                checkpoint=str(data.get("checkpoint") or ""),
                consistency=tuple(
                    ConsistencyProof.from_dict(p) for p in data.get("consistency") or []
                ),
                rolled_back=parse_rolled_back(data.get("rolled_back")),
            )
        except MediaError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise MediaError(f"malformed metrics payload: {exc}") from None
        payload.check_anonymity()
        return payload

    def check_anonymity(self) -> None:
        """Refuses a payload that breaks its own k-anonymity (fail closed at the receiver).

        Raises:
            VerificationError: k is below 2, or a cell or total covers fewer than k nodes.
        """
        small = [f"{c.model}@{c.version} ring {c.ring}" for c in self.cells if c.nodes < self.k]
        small += [f"{t.model}@{t.version} total" for t in self.totals if t.nodes < self.k]
        if self.k < 2 or small:
            raise VerificationError(
                f"the metrics payload breaks k-anonymity (k = {self.k}"
                + (f"; fewer than k nodes: {', '.join(small[:5])}" if small else "")
                + ")",
                hint="the site's export is faulty: do not use these figures; "
                "report it to the site and have it export again",
            )


@dataclass(frozen=True)
class ReturnPath:
    """The hub's ``x-airlock-return`` Director field: where a site's metrics go.

    Attributes:
        hub_recipient: The hub's age X25519 recipient (metrics payloads are encrypted to it).
        witness_name: The hub's witness name (its audit checkpoint origin).
        witness_key: The witness's Ed25519 public key (securesystemslib dict, with ``keyid``).
        acknowledged_sequence: The last metrics bundle the hub imported from this site (0: none).
        acknowledged_note: That bundle's checkpoint, cosigned by the witness ("" when none).
    """

    hub_recipient: str
    witness_name: str
    witness_key: dict[str, Any]
    acknowledged_sequence: int = 0
    acknowledged_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the Director targets field holds)."""
        return {
            "hub_recipient": self.hub_recipient,
            "witness_name": self.witness_name,
            "witness_key": dict(self.witness_key),
            "acknowledged_sequence": self.acknowledged_sequence,
            "acknowledged_note": self.acknowledged_note,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ReturnPath:
        """Parses :meth:`to_dict` output (MediaError when malformed)."""
        try:
            path = cls(
                hub_recipient=str(data["hub_recipient"]),
                witness_name=str(data["witness_name"]),
                witness_key=dict(data["witness_key"]),
                acknowledged_sequence=int(data.get("acknowledged_sequence", 0)),
                acknowledged_note=str(data.get("acknowledged_note") or ""),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MediaError(f"malformed {RETURN_FIELD} field: {exc}") from None
        if not path.hub_recipient.startswith("age1") or path.acknowledged_sequence < 0:
            raise MediaError(f"malformed {RETURN_FIELD} field: bad recipient or sequence")
        if bool(path.acknowledged_note) != (path.acknowledged_sequence > 0):
            raise MediaError(f"malformed {RETURN_FIELD} field: acknowledgement half given")
        return path
