"""Fixtures for the end-to-end and attack tests: session templates, copied per test.

Real ceremony, real hub, real spoke, real age and TUF; only time (``FixedClock``)
and the medium (files edited on disk) are fake. The fixtures live in
:mod:`helpers.spokefixtures`, a plugin of the root conftest, so that tests/spoke
shares them.
"""
