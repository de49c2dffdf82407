"""Fixtures for the end-to-end and attack tests: session templates, copied per test.

Real ceremony, real hub, real spoke, real age and TUF; only time (``FixedClock``)
and the medium (files edited on disk) are fake. The fixtures live in
:mod:`helpers.spokefixtures` so that tests/spoke shares them.
"""

from helpers.spokefixtures import (  # noqa: F401 - fixtures, found by name
    hub,
    hub_clock,
    media,
    secrets,
    spoke,
    world,
)
