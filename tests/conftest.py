"""Root conftest: its presence puts ``tests/`` on ``sys.path``, so test modules can
``from helpers.… import …`` (shared, real-crypto test helpers; no mocks).

Its plugins: the session templates shared by tests/e2e and tests/spoke; the slow
tier, read from tests/slow_tests.txt; the loopback guard, which fails any test that
reaches beyond 127.0.0.1/::1 (all three explained in tests/README.md); and the
``connections`` fixture, which counts the database connections a command opens and closes.
"""

pytest_plugins = [
    "helpers.spokefixtures",
    "helpers.slowtier",
    "helpers.netguard_plugin",
    "helpers.connections",
]
