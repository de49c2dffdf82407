"""Counting the DBAPI connections SQLAlchemy's pools open and close, with its pool events.

A command that closes what it opens leaves ``opened == closed``: the tests of
``airlock hub …`` and ``airlock spoke …`` commands use the ``connections`` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import event
from sqlalchemy.pool import Pool


class Connections:
    """How many DBAPI connections the pools opened and closed while it listened."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0

    def on_connect(self, *_args: object) -> None:
        self.opened += 1

    def on_close(self, *_args: object) -> None:
        self.closed += 1


@pytest.fixture
def connections() -> Iterator[Connections]:
    """Listens to every pool while the test runs."""
    counter = Connections()
    event.listen(Pool, "connect", counter.on_connect)
    event.listen(Pool, "close", counter.on_close)
    yield counter
    event.remove(Pool, "connect", counter.on_connect)
    event.remove(Pool, "close", counter.on_close)
