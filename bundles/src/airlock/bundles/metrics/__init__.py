"""The return path's contract: the metrics bundle a site sends back to the hub, the
typed rows it carries (and the table row both sides store them in), and the mergeable
statistics (latency sketch, prediction counts) that are the same on a node, at a site
and at the hub.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.metrics._bundle import (
    DEFAULT_TRANSIT_DAYS,
    PAYLOAD_FILE,
    open_metrics_bundle,
    write_metrics_bundle,
)
from airlock.bundles.metrics._figures import (
    CANDIDATE_RING,
    LABEL_PATTERN,
    MAX_LABELS,
    STABLE_RING,
    MetricsCell,
    MetricsTotal,
)
from airlock.bundles.metrics._model import (
    DEFAULT_K,
    NOISE_FAMILIES,
    RETURN_FIELD,
    ConsistencyProof,
    MetricsPayload,
    NoiseSpec,
    ReturnPath,
)
from airlock.bundles.metrics._outcomes import RolledBackVersion
from airlock.bundles.metrics._prediction_stats import (
    CONFIDENCE_BUCKETS,
    answer_labels,
    confidence_bucket,
    confidences,
    count,
    labels,
    rows,
    value_bucket,
)
from airlock.bundles.metrics._rows import MetricsRow, json_field
from airlock.bundles.metrics._sketch import GAMMA, LatencySketch

__all__ = [
    "CANDIDATE_RING",
    "CONFIDENCE_BUCKETS",
    "DEFAULT_K",
    "DEFAULT_TRANSIT_DAYS",
    "GAMMA",
    "LABEL_PATTERN",
    "MAX_LABELS",
    "NOISE_FAMILIES",
    "PAYLOAD_FILE",
    "RETURN_FIELD",
    "STABLE_RING",
    "ConsistencyProof",
    "LatencySketch",
    "MetricsCell",
    "MetricsPayload",
    "MetricsRow",
    "MetricsTotal",
    "NoiseSpec",
    "ReturnPath",
    "RolledBackVersion",
    "answer_labels",
    "confidence_bucket",
    "confidences",
    "count",
    "json_field",
    "labels",
    "open_metrics_bundle",
    "rows",
    "value_bucket",
    "write_metrics_bundle",
]
