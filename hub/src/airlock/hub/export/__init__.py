"""Assigning versions to sites and exporting their bundles: assignments with rollout
plans, export planning (writes nothing) and writing the bundle.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.hub.export._assignments import assign, unassign
from airlock.hub.export._bundle import ExportPlan, MetadataList, director_roots, write_bundle
from airlock.hub.export._media import MediaOptions, parse_volume_size
from airlock.hub.export._planner import commit_export, export, plan_export
from airlock.hub.export._shared import export_sites

__all__ = [
    "ExportPlan",
    "MediaOptions",
    "MetadataList",
    "assign",
    "commit_export",
    "director_roots",
    "export",
    "export_sites",
    "parse_volume_size",
    "plan_export",
    "unassign",
    "write_bundle",
]
