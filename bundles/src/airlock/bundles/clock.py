"""Time, as one injectable dependency.

Freshness decisions (expiry, the spoke's time floor) read the clock through
this interface so that tests can fake the outside world's time without
touching the security code.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol


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

    Raises:
        ValueError: ``text`` is not in that form.
    """
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
