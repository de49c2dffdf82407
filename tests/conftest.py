"""Root conftest: its presence puts ``tests/`` on ``sys.path``, so test modules can
``from helpers.… import …`` (shared, real-crypto test helpers; no mocks)."""

pytest_plugins = [
    "helpers.spokefixtures",  # session templates shared by tests/e2e and tests/spoke
    "helpers.connections",  # `connections`: DBAPI connections opened and closed
]
