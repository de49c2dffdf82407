"""Time, as one injectable dependency.

Freshness decisions (expiry, the spoke's time floor) read the clock through
this interface so that tests can fake the outside world's time without
touching the security code.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from airlock.bundles.strict import UTC_TIME


class Clock(Protocol):
    """Something that tells the current UTC time."""

    def now(self) -> dt.datetime:
        """Returns the current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> dt.datetime:
        """Returns the machine's current UTC time, truncated to whole seconds."""
        return dt.datetime.now(dt.UTC).replace(microsecond=0)


class FixedClock:
    """A clock that reads whatever it is set to (for tests and simulations)."""

    def __init__(self, when: dt.datetime) -> None:
        self.when = when

    def now(self) -> dt.datetime:
        """Returns the time the clock is set to."""
        return self.when

    def advance(self, delta: dt.timedelta) -> None:
        """Moves the clock by ``delta`` (may be negative, to simulate a faulty clock)."""
        self.when = self.when + delta


def utc_iso(when: dt.datetime) -> str:
    """Formats a UTC time as ``YYYY-MM-DDTHH:MM:SSZ`` (the TUF form)."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> dt.datetime:
    """Parses ``YYYY-MM-DDTHH:MM:SSZ`` into an aware UTC datetime.

    Every field must be zero-padded ASCII digits (``strptime`` alone would also
    take ``2026-1-1T1:1:1Z``).

    Raises:
        ValueError: ``text`` is not in that form.
    """
    if not isinstance(text, str) or not UTC_TIME.fullmatch(text):
        raise ValueError(f"{str(text)[:40]!r} is not a UTC time like 2026-01-31T12:00:00Z")
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
