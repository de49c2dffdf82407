"""The coordinator's side of a multi-officer ceremony: the workspace, the signing request
built from the officers' key offers, counting the signatures, the signed transcript,
and re-deriving a finished ceremony from its files.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.ceremony.coordinator._finalize import finalize
from airlock.ceremony.coordinator._propose import propose
from airlock.ceremony.coordinator._transcript import (
    HTML_FILE,
    TRANSCRIPT_FILE,
    Transcript,
    read_transcript,
    render_html,
    seal_transcript,
    sign_transcript,
    tool_record,
)
from airlock.ceremony.coordinator._verify import verify_transcript
from airlock.ceremony.coordinator._workspace import AUDIT_DB, Workspace

__all__ = [
    "AUDIT_DB",
    "HTML_FILE",
    "TRANSCRIPT_FILE",
    "Transcript",
    "Workspace",
    "finalize",
    "propose",
    "read_transcript",
    "render_html",
    "seal_transcript",
    "sign_transcript",
    "tool_record",
    "verify_transcript",
]
