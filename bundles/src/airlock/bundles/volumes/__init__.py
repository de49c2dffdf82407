"""Bundle format v2 on media: data volumes, parity volumes and the per-site part.

The transport layer only: no database, no TUF (callers verify the envelope and
the metadata, check every chunk index against its signed binding, and record
what happened).

* Hub: :func:`write_series` writes a series' data volumes (standard age files, or
  plain tars) and its zfec parity volumes; :func:`write_site_part` writes a site's
  ``site.age``.
* Spoke: :func:`read_site_part` reads it back strictly; :class:`Assembler` verifies
  volumes chunk by chunk into a private, resumable state directory, rebuilds lost
  or damaged volumes from parity, and hands out files only once every chunk is
  verified.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.volumes._api import (
    find_volumes,
    minimum_volume_size,
    new_name_key,
    new_series_id,
)
from airlock.bundles.volumes._assemble import Assembler
from airlock.bundles.volumes._format import chunk_name
from airlock.bundles.volumes._layout import STRIPE, Layout, LayoutSeries, LayoutVolume
from airlock.bundles.volumes._plan import SeriesFile, SeriesSpec
from airlock.bundles.volumes._readplan import AssemblyPlan
from airlock.bundles.volumes._site import SITE_LIMIT, SitePart, read_site_part, write_site_part
from airlock.bundles.volumes._status import AssemblyStatus, VolumeStatus
from airlock.bundles.volumes._writer import SeriesWritten, write_series

__all__ = [
    "SITE_LIMIT",
    "STRIPE",
    "Assembler",
    "AssemblyPlan",
    "AssemblyStatus",
    "Layout",
    "LayoutSeries",
    "LayoutVolume",
    "SeriesFile",
    "SeriesSpec",
    "SeriesWritten",
    "SitePart",
    "VolumeStatus",
    "chunk_name",
    "find_volumes",
    "minimum_volume_size",
    "new_name_key",
    "new_series_id",
    "read_site_part",
    "write_series",
    "write_site_part",
]
