"""The hub database's schema history (Alembic): ``env.py`` and ``versions/``.

Run by :mod:`airlock.bundles.schema` (``airlock hub init``,
``airlock hub db upgrade``), found through the ``airlock.migrations`` entry
point. The shared tables of ``bundles`` this home uses (audit log and
checkpoints, event outbox, …) are part of this history. How to add a
revision: docs/dev-migrations.md.
"""

HEAD = "hub_0002"
"""The newest revision in ``versions/``: every command compares the database's version with it.

``scripts/new_migration.py`` updates it with each new revision, and
``tests/e2e/test_schema_versions.py`` fails when it differs from the history's head.
"""
