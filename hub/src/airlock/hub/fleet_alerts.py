"""Drift and error-rate limits on the fleet's figures: open an alert once, emit an event.

(Placeholder: the body is being written.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

if TYPE_CHECKING:
    from airlock.hub.hub import Hub


def evaluate_alerts(
    session: Session, hub: Hub, refs: Iterable[tuple[str, str]], now: dt.datetime
) -> list[dict[str, Any]]:
    """Checks the limits for model versions ``refs``; returns the alerts opened now."""
    return []
