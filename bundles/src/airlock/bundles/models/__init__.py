"""The typed model layer: the nouns of the design brief, validated on construction.

Every model has ``to_dict``/``from_dict``. ``from_dict`` is used on untrusted
input too, so it raises :class:`~airlock.bundles.errors.MediaError` for data
that is not well-formed, before any trust decision is made.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.models._envelope import (
    ENVELOPE_FIELDS,
    ENVELOPE_FIELDS_2,
    OPTIONAL_ENVELOPE_FIELDS,
    BundleKind,
    Envelope,
    PayloadPart,
    envelope_source,
)
from airlock.bundles.models._model_version import ModelFile, ModelVersion, SiteIdentity
from airlock.bundles.models._names import (
    BUNDLE_FORMAT,
    BUNDLE_ID_PATTERN,
    ENVELOPE_HINT,
    FORMAT_VERSION,
    FORMAT_VERSIONS,
    HUB_SOURCE,
    NAME_PATTERN,
    SHA256_PATTERN,
    SITE_PATTERN,
    check_name,
    check_site_id,
)
from airlock.bundles.models._volumes import (
    DATA,
    PARITY,
    SERIES_PATTERN,
    SITE_PART_NAMES,
    SeriesRecord,
    VolumeRecord,
    volume_name,
)

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_ID_PATTERN",
    "DATA",
    "ENVELOPE_FIELDS",
    "ENVELOPE_FIELDS_2",
    "ENVELOPE_HINT",
    "FORMAT_VERSION",
    "FORMAT_VERSIONS",
    "HUB_SOURCE",
    "NAME_PATTERN",
    "OPTIONAL_ENVELOPE_FIELDS",
    "PARITY",
    "SERIES_PATTERN",
    "SHA256_PATTERN",
    "SITE_PART_NAMES",
    "SITE_PATTERN",
    "BundleKind",
    "Envelope",
    "ModelFile",
    "ModelVersion",
    "PayloadPart",
    "SeriesRecord",
    "SiteIdentity",
    "VolumeRecord",
    "check_name",
    "check_site_id",
    "envelope_source",
    "volume_name",
]
