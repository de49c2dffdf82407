"""Root conftest: its presence puts ``tests/`` on ``sys.path``, so test modules can
``from helpers.… import …`` (shared, real-crypto test helpers; no mocks).

Its plugins: the session templates shared by tests/e2e and tests/spoke, and the
loopback guard that fails any test reaching beyond 127.0.0.1/::1 (tests/README.md).
"""

pytest_plugins = ["helpers.spokefixtures", "helpers.netguard_plugin"]
