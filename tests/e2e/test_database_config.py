"""Where a home's database is: saved at init, never created by a later command, one per role.

Runs the real ``airlock`` command (in-process) against the machine's PostgreSQL
server, in a database or schemas private to each test (:mod:`helpers.pgenv`),
and against SQLite files.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers.hubenv import HUB_PASSPHRASE, HUB_TIME
from helpers.pgenv import (
    SERVER,
    TEST_DATABASE,
    fresh_database,
    schema_exists,
    schema_prefix,
    schema_tables,
)
from helpers.spokeenv import SITE_PASSPHRASE, World, assert_error_output
from sqlalchemy import text

from airlock.bundles.cli import main
from airlock.bundles.clock import FixedClock
from airlock.bundles.config import CONFIG_FILE
from airlock.bundles.db import make_engine

SITE = "plant-5"


def airlock(*args: str, **env: str) -> Result:
    """``airlock ARGS…`` with only the given Airlock variables (plus both passphrases) set."""
    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("AIRLOCK_")}
    clean.update(
        {
            "AIRLOCK_PRINCIPAL": "site-admin",
            "AIRLOCK_HUB_PASSPHRASE": HUB_PASSPHRASE,
            "AIRLOCK_SPOKE_PASSPHRASE": SITE_PASSPHRASE,
            "COLUMNS": "200",
        }
    )
    clean.update(env)
    return CliRunner().invoke(main, list(args), env=clean, catch_exceptions=False)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output + result.stderr
    return result


def spoke_init(world: World, home: Path, **env: str) -> Result:
    return airlock(
        "spoke",
        "init",
        "--home",
        str(home),
        "--site-id",
        SITE,
        "--image-root",
        str(world.ceremony.image_root),
        "--director-root",
        str(world.ceremony.director_root),
        **env,
    )


def hub_init(world: World, home: Path, **env: str) -> Result:
    return airlock("hub", "init", "--home", str(home), "--from", str(world.ceremony.out_dir), **env)


@pytest.fixture
def prefix() -> Iterator[str]:
    with schema_prefix() as made:
        yield made


# --- point 12: the database chosen at init is the one every later command opens ----------------


def test_the_database_url_given_at_init_is_saved_and_used_without_the_variable(
    world: World, tmp_path: Path, prefix: str
) -> None:
    home = tmp_path / "hub"
    schema = f"{prefix}_hub"
    ok(hub_init(world, home, AIRLOCK_DATABASE_URL=TEST_DATABASE, AIRLOCK_DATABASE_SCHEMA=schema))
    config = (home / CONFIG_FILE).read_text()
    assert TEST_DATABASE in config and schema in config
    assert stat.S_IMODE((home / CONFIG_FILE).stat().st_mode) == 0o644, "no password: readable"

    spoke = tmp_path / "spoke"
    ok(spoke_init(world, spoke, AIRLOCK_DATABASE_URL="sqlite:///spoke.db"))
    ok(
        airlock(
            "hub",
            "site",
            "add",
            "--home",
            str(home),
            "--identity",
            str(spoke / "site-identity.json"),
        )
    )

    status = json.loads(ok(airlock("hub", "status", "--home", str(home), "--json")).stdout)
    assert [s["site_id"] for s in status["sites"]] == [SITE]
    assert not (home / "hub.db").exists(), "no SQLite database appeared next to the PG one"
    assert "hub_site" in schema_tables(TEST_DATABASE, schema)
    engine = make_engine(TEST_DATABASE, schema)
    with engine.connect() as conn:
        sites = conn.execute(text("SELECT site_id FROM hub_site")).scalars().all()
    engine.dispose()
    assert sites == [SITE], "the site was added to the database chosen at init"


def test_a_password_in_the_url_makes_the_config_private_and_never_appears_in_output(
    world: World, tmp_path: Path, prefix: str
) -> None:
    home = tmp_path / "spoke"
    url = "postgresql+psycopg://postgres:pw-s3cret-123@127.0.0.1:5432/test"
    ok(spoke_init(world, home, AIRLOCK_DATABASE_URL=url, AIRLOCK_DATABASE_SCHEMA=f"{prefix}_s"))
    assert stat.S_IMODE((home / CONFIG_FILE).stat().st_mode) == 0o600
    assert "pw-s3cret-123" in (home / CONFIG_FILE).read_text()

    gone = "postgresql+psycopg://postgres:pw-s3cret-123@127.0.0.1:5432/no_such_db_airlock"
    refused = airlock("spoke", "status", "--home", str(home), AIRLOCK_DATABASE_URL=gone)
    assert refused.exit_code == 1, refused.output + refused.stderr
    assert_error_output(refused.stderr, "cannot use the spoke database")
    assert "no_such_db_airlock" in refused.stderr and "***" in refused.stderr
    assert "pw-s3cret-123" not in refused.output + refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_home_whose_sqlite_file_was_removed_is_refused_and_nothing_is_created(
    world: World, tmp_path: Path
) -> None:
    spoke = world.new_spoke(tmp_path / "spoke").path
    hub_home = tmp_path / "hub"
    world.new_hub(hub_home, FixedClock(HUB_TIME)).close()
    for home, database, command in (
        (spoke, "spoke.db", ("spoke", "status")),
        (hub_home, "hub.db", ("hub", "status")),
        (spoke, "spoke.db", ("audit", "verify")),
        (hub_home, "hub.db", ("audit", "query")),
    ):
        for leftover in home.glob(f"{database}*"):
            leftover.unlink()
        refused = airlock(*command, "--home", str(home))
        assert refused.exit_code == 3, (command, refused.output + refused.stderr)
        assert_error_output(refused.stderr, f"database {home / database} does not exist")
        assert "AIRLOCK_DATABASE_URL" in refused.stderr and "init" in refused.stderr
        assert list(home.glob(f"{database}*")) == [], "no new, empty database was created"


def test_a_home_pointed_at_an_empty_postgresql_schema_is_refused(
    world: World, tmp_path: Path, prefix: str
) -> None:
    spoke = world.new_spoke(tmp_path / "spoke").path
    empty, missing = f"{prefix}_empty", f"{prefix}_missing"
    admin = make_engine(TEST_DATABASE)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{empty}"'))
    admin.dispose()
    for schema in (empty, missing):
        env = {"AIRLOCK_DATABASE_URL": TEST_DATABASE, "AIRLOCK_DATABASE_SCHEMA": schema}
        refused = airlock("spoke", "status", "--home", str(spoke), **env)
        assert refused.exit_code == 3, refused.output + refused.stderr
        assert_error_output(refused.stderr, f"(schema {schema}) holds no Airlock spoke tables")
        refused = airlock("audit", "verify", "--home", str(spoke), **env)
        assert refused.exit_code == 3, refused.output + refused.stderr
    assert schema_tables(TEST_DATABASE, empty) == [], "nothing was created in the empty schema"
    assert not schema_exists(TEST_DATABASE, missing), "the missing schema was not created"


# --- point 11: a hub and a spoke on one PostgreSQL database keep separate logs -----------------


def test_a_hub_and_a_spoke_on_one_postgresql_database_keep_separate_audit_logs(
    world: World, tmp_path: Path
) -> None:
    hub, spoke, media = tmp_path / "hub", tmp_path / "spoke", tmp_path / "bundle"
    with fresh_database() as url:
        ok(hub_init(world, hub, AIRLOCK_DATABASE_URL=url))
        ok(spoke_init(world, spoke, AIRLOCK_DATABASE_URL=url))
        model = world.sources["classifier@1"].path
        for args in (
            ("site", "add", "--identity", str(spoke / "site-identity.json")),
            ("model", "add", "classifier", "1", str(model)),
            ("assign", SITE, "classifier", "1"),
            ("export", "--site", SITE, "--out", str(media)),
        ):
            ok(airlock("hub", *args, "--home", str(hub)))
        ok(airlock("spoke", "import", "--home", str(spoke), str(media)))
        for home in (hub, spoke):
            ok(airlock("audit", "checkpoint", "--home", str(home)))

        for home in (hub, spoke):
            report = ok(airlock("audit", "verify", "--home", str(home), "--json"))
            assert json.loads(report.stdout)["ok"] is True
        assert {"audit_log", "hub_site"} <= set(schema_tables(url, "airlock_hub"))
        assert {"audit_log", "spoke_state"} <= set(schema_tables(url, "airlock_spoke"))
        assert schema_tables(url, "public") == [], "nothing lands in the shared public schema"
        components = []
        for schema in ("airlock_hub", "airlock_spoke"):
            engine = make_engine(url, schema)
            with engine.connect() as conn:
                components.append(
                    set(conn.execute(text("SELECT component FROM audit_log")).scalars())
                )
            engine.dispose()
        assert components == [{"hub"}, {"spoke"}]


def test_init_refuses_a_schema_that_already_holds_a_home(world: World, tmp_path: Path) -> None:
    with fresh_database() as url:
        ok(spoke_init(world, tmp_path / "first", AIRLOCK_DATABASE_URL=url))
        second = spoke_init(world, tmp_path / "second", AIRLOCK_DATABASE_URL=url)
        assert second.exit_code == 3, second.output + second.stderr
        assert_error_output(second.stderr, "already holds an Airlock spoke")
        assert not (tmp_path / "second").exists()
        assert SERVER in url
