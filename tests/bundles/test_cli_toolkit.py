"""The shared CLI toolkit: tables readable at 80 columns, options, JSON, homes always closed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from rich.console import Console
from rich.table import Table

from airlock.bundles.cli import (
    closing_home,
    emit_json,
    home_database,
    home_option,
    json_option,
    print_table,
)
from airlock.bundles.config import load_config
from airlock.bundles.db import create_home_database
from airlock.bundles.errors import UsageError

IDS = ["classifier-production-eu", "classifier-staging", "fraud-scoring-v2"]
HASHES = [hashlib.sha256(name.encode()).hexdigest() for name in IDS]


def render(columns: list[str], rows: list[list[str]], width: int) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"), color_system=None)  # noqa: SIM115
    print_table("releases", columns, rows, console=console)
    console.file.close()
    return console.export_text()


def test_ids_stay_whole_and_hashes_fold_at_80_columns() -> None:
    rows = [[f"{name}.onnx", "model", digest] for name, digest in zip(IDS, HASHES, strict=True)]
    text = render(["file", "kind", "sha256"], rows, 80)

    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    lines = text.splitlines()
    for name in IDS:  # each file name on one line, whole
        assert any(f" {name}.onnx " in line for line in lines), name
    for digest in HASHES:  # too long for its column: folded onto lines of its own, not cut
        assert digest not in text
    column = [line.split("│")[3].strip() for line in lines if line.count("│") == 4]
    assert "".join(column) == "".join(HASHES)


def test_hashes_leave_a_table_too_wide_for_them() -> None:
    rows = [
        [name, "12", f"{name}.onnx", "model", digest]
        for name, digest in zip(IDS, HASHES, strict=True)
    ]
    text = render(["model", "version", "file", "kind", "sha256"], rows, 80)

    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    lines = text.splitlines()
    for name, digest in zip(IDS, HASHES, strict=True):  # ids whole in the grid
        assert any(f"│ {name} " in line and f" {name}.onnx " in line for line in lines), name
        at = lines.index(f"{name}  sha256:")  # each hash on a line of its own, whole
        assert lines[at + 1] == f"  {digest}"
    assert "…" in render_plain(rows)  # what rich alone would print: cut ids


def render_plain(rows: list[list[str]]) -> str:
    """The same table as a plain rich table (the one the toolkit replaces)."""
    console = Console(width=80, record=True, file=open("/dev/null", "w"), color_system=None)  # noqa: SIM115
    plain = Table("model", "version", "file", "kind", "sha256")
    for row in rows:
        plain.add_row(*row)
    console.print(plain)
    return console.export_text()


def test_a_narrow_table_is_left_as_rich_draws_it() -> None:
    rows = [["classifier-production-eu", "12"]]
    assert render(["model", "version"], rows, 80) == render(["model", "version"], rows, 200)


def test_long_text_wraps_at_words_beside_a_whole_id() -> None:
    reason = "the validation set showed a regression on the night-shift images " * 3
    text = render(["model", "reason"], [[IDS[0], reason.strip()]], 80)

    assert "…" not in text
    assert f" {IDS[0]} " in text
    assert " ".join(unfolded_words(text, 2)) == reason.strip()


def unfolded_words(text: str, column: int) -> list[str]:
    cells = [line.split("│")[column].strip() for line in text.splitlines() if line.count("│") == 3]
    return " ".join(cells).split()


@click.command()
@home_option(envvar="AIRLOCK_TEST_HOME", help="A home.", default="test-home")
@json_option()
def show(home: Path, as_json: bool) -> None:
    """Prints the options it got."""
    emit_json({"home": str(home), "as_json": as_json, "a": 1})


def test_options_and_json() -> None:
    runner = CliRunner()
    out = runner.invoke(show, ["--json"], env={"AIRLOCK_TEST_HOME": "elsewhere"})
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {"home": "elsewhere", "as_json": True, "a": 1}
    assert out.output.index('"a"') < out.output.index('"as_json"')  # sorted keys
    default = runner.invoke(show, [], env={"AIRLOCK_TEST_HOME": None})
    assert json.loads(default.output)["home"] == "test-home"
    assert "[default: test-home]" in runner.invoke(show, ["--help"]).output


class Resource:
    """Something a command opens: it counts its closes."""

    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_closing_home_closes_on_success_and_on_error() -> None:
    resource = Resource()
    with closing_home(resource) as opened:
        assert opened is resource
    assert resource.closed == 1
    with pytest.raises(UsageError), closing_home(resource):
        raise UsageError("refused")
    assert resource.closed == 2


def test_home_database_disposes_the_engine(tmp_path: Path) -> None:
    from airlock.bundles.audit import AuditRecord

    (tmp_path / "airlock.toml").write_text('role = "hub"\n')
    config = load_config(tmp_path)
    create_home_database(config, AuditRecord, [AuditRecord]).dispose()
    with home_database(config, AuditRecord) as engine:
        with engine.connect():
            assert engine.pool.checkedout() == 1
        assert engine.pool.checkedin() == 1
    assert engine.pool.checkedin() == 0  # disposed: the pool holds no connection any more
