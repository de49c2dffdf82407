"""The typed model layer: the nouns of the design brief, validated on construction.

Every model has ``to_dict``/``from_dict``. ``from_dict`` is used on untrusted
input too, so it raises :class:`~airlock.bundles.errors.MediaError` for data
that is not well-formed, before any trust decision is made.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.models._envelope import (
    ENVELOPE_FIELDS,
    OPTIONAL_ENVELOPE_FIELDS,
    BundleKind,
    Envelope,
    PayloadPart,
    envelope_source,
)
from airlock.bundles.models._model_version import ModelFile, ModelVersion, SiteIdentity
from airlock.bundles.models._names import (
    BUNDLE_ID_PATTERN,
    ENVELOPE_HINT,
    FORMAT_VERSION,
    HUB_SOURCE,
    NAME_PATTERN,
    SHA256_PATTERN,
    SITE_PATTERN,
    check_name,
    check_site_id,
)

__all__ = [
    "BUNDLE_ID_PATTERN",
    "ENVELOPE_FIELDS",
    "ENVELOPE_HINT",
    "FORMAT_VERSION",
    "HUB_SOURCE",
    "NAME_PATTERN",
    "OPTIONAL_ENVELOPE_FIELDS",
    "SHA256_PATTERN",
    "SITE_PATTERN",
    "BundleKind",
    "Envelope",
    "ModelFile",
    "ModelVersion",
    "PayloadPart",
    "SiteIdentity",
    "check_name",
    "check_site_id",
    "envelope_source",
]
