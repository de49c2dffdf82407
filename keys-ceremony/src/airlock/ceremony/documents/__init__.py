"""The documents of a ceremony, as every participant reads them: the plan, the signing
request, the record (``ceremony.json``) and output directory, the summary an officer
checks, the history a rotation starts from, and the schedule of the next ceremony.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.ceremony_output import CeremonyRecord, load_ceremony
from airlock.ceremony.documents._history import load_history
from airlock.ceremony.documents._plan import (
    DIRECTOR_ROOT,
    IMAGE_ROOT,
    IMAGE_TARGETS,
    LAYOUT,
    load_plan,
    new_plan_text,
    parse_plan,
)
from airlock.ceremony.documents._schedule import DUE, EXIT_DUE, EXIT_EXPIRED, EXPIRED

__all__ = [
    "DIRECTOR_ROOT",
    "DUE",
    "EXIT_DUE",
    "EXIT_EXPIRED",
    "EXPIRED",
    "IMAGE_ROOT",
    "IMAGE_TARGETS",
    "LAYOUT",
    "CeremonyRecord",
    "load_ceremony",
    "load_history",
    "load_plan",
    "new_plan_text",
    "parse_plan",
]
