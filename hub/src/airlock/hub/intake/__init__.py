"""Taking models in: staging files, in-toto attestations, releasing versions as signed
Image targets, and importing them from an MLflow registry.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.hub.intake._attestations import (
    anchor,
    draft_layout,
    layout_info,
    package_key_ref,
    package_signer,
    set_layout,
)
from airlock.hub.intake._mlflow import import_model, redact_uri, tracking_uri_for
from airlock.hub.intake._mlflow_registry import parse_model_uri
from airlock.hub.intake._releases import add_model, release_model

__all__ = [
    "add_model",
    "anchor",
    "draft_layout",
    "import_model",
    "layout_info",
    "package_key_ref",
    "package_signer",
    "parse_model_uri",
    "redact_uri",
    "release_model",
    "set_layout",
    "tracking_uri_for",
]
