"""``airlock audit query``: every filter narrows to exactly the right entries, outputs round-trip.

The log is built through the real :meth:`AuditLog.record` (real hashes, real
SQLite); each filter's answer is compared with the same filter applied in
Python to every entry.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text

from airlock.bundles.audit import (
    COLUMNS,
    AuditLog,
    AuditQuery,
    AuditRecord,
    iter_entries,
    parse_time,
    write_csv,
    write_jsonl,
)
from airlock.bundles.cli import main
from airlock.bundles.config import write_config
from airlock.bundles.errors import UsageError
from airlock.bundles.schema import create_home_database

T0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
ACTIONS = (
    "spoke.import",
    "spoke.rollout.ring-started",
    "spoke.rollout.promoted",
    "spoke.node.enroll",
    "spoke.rolloutish",  # shares the text prefix "spoke.rollout" but not "spoke.rollout."
)
OUTCOMES = ("success", "failure", "refused", "unchanged")
PRINCIPALS = ("alice", "bob", "airlock-rollout-engine", "node:n1")


def build_log(home: Path, count: int = 60) -> Engine:
    """A spoke-like home whose log holds ``count`` varied entries, 5 hours apart."""
    config = write_config(home, "spoke", {"site_id": "plant-7"})
    engine = create_home_database(config, AuditRecord)  # a home at this release's schema
    logs = [AuditLog(engine, "spoke", site="plant-7"), AuditLog(engine, "hub", site="")]
    for i in range(count):
        logs[i % 7 == 0].record(
            ACTIONS[i % len(ACTIONS)],
            OUTCOMES[i % len(OUTCOMES)],
            principal=PRINCIPALS[i % len(PRINCIPALS)],
            object=f"key-{i % 2}",
            node=f"n{i % 3}" if i % 6 else "",
            model=("iris", "wine")[i % 2],
            version=str(i % 3 + 1),
            bundle_id=f"bundle-{i % 4}",
            rollout_id=f"ro-{i % 5}" if i % 5 else "",
            change_request=("CHG001", "CHG002", "")[i % 3],
            reason='a "quoted", comma\nand newline — ünïcode' if i == 5 else "",
            details={"i": i, "nested": {"list": [1, "two"]}},
            when=T0 + dt.timedelta(hours=5 * i),
        )
    return engine


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Engine, list[dict[str, Any]]]:
    home = tmp_path_factory.mktemp("home")
    engine = build_log(home)
    everything = list(iter_entries(engine, AuditQuery()))
    return home, engine, everything


def seqs(entries: Any) -> list[int]:
    return [entry["seq"] for entry in entries]


Case = tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]
CASES: dict[str, Case] = {
    "principal": ({"principal": "bob"}, lambda e: e["principal"] == "bob"),
    "principal prefix": ({"principal": "node:*"}, lambda e: e["principal"].startswith("node:")),
    "action exact": ({"action": "spoke.import"}, lambda e: e["action"] == "spoke.import"),
    "action prefix": (
        {"action": "spoke.rollout.*"},
        lambda e: e["action"].startswith("spoke.rollout."),
    ),
    "outcome": ({"outcome": "refused"}, lambda e: e["outcome"] == "refused"),
    "two outcomes": (
        {"outcome": ("failure", "refused")},
        lambda e: e["outcome"] in ("failure", "refused"),
    ),
    "site": ({"site": "plant-7"}, lambda e: e["site"] == "plant-7"),
    "node": ({"node": "n2"}, lambda e: e["node"] == "n2"),
    "model": ({"model": "wine"}, lambda e: e["model"] == "wine"),
    "version": ({"version": "3"}, lambda e: e["version"] == "3"),
    "bundle": ({"bundle_id": "bundle-1"}, lambda e: e["bundle_id"] == "bundle-1"),
    "rollout": ({"rollout_id": "ro-2"}, lambda e: e["rollout_id"] == "ro-2"),
    "change request": ({"change_request": "CHG002"}, lambda e: e["change_request"] == "CHG002"),
    "no change request": ({"change_request": ""}, lambda e: e["change_request"] == ""),
    "object": ({"object": "key-1"}, lambda e: e["object"] == "key-1"),
    "combined": (
        {"model": "iris", "version": "1", "outcome": "success", "change_request": "CHG001"},
        lambda e: (
            (e["model"], e["version"], e["outcome"], e["change_request"])
            == ("iris", "1", "success", "CHG001")
        ),
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_each_filter_narrows_to_exactly_the_matching_entries(
    log: tuple[Path, Engine, list[dict[str, Any]]], name: str
) -> None:
    _, engine, everything = log
    filters, predicate = CASES[name]
    expected = [e for e in everything if predicate(e)]
    assert 0 < len(expected) < len(everything), "the test data must make the filter matter"
    assert seqs(iter_entries(engine, AuditQuery(**filters), batch=4)) == seqs(expected)


def test_time_bounds_are_inclusive_exclusive_and_a_date_covers_its_day(
    log: tuple[Path, Engine, list[dict[str, Any]]],
) -> None:
    _, engine, everything = log
    since, until = T0 + dt.timedelta(hours=20), T0 + dt.timedelta(hours=50)  # both on entries
    got = seqs(iter_entries(engine, AuditQuery(since=since, until=until)))
    assert got == seqs(e for e in everything if since.isoformat() <= e["time"] < until.isoformat())
    assert got[0] == 5 and got[-1] == 10  # entry 5 at 20 h is in, entry 11 at 50 h is out
    march_2 = AuditQuery(
        since=parse_time("2025-03-02"), until=parse_time("2025-03-02", end_of_day=True)
    )
    assert {e["time"][:10] for e in iter_entries(engine, march_2)} == {"2025-03-02"}
    assert len(list(iter_entries(engine, march_2))) == 5  # 09:00 + 5 h steps: 00:00, 05:00, … 20:00
    # A bound between two entries by a microsecond, in another time zone, still splits right.
    plus_two = dt.timezone(dt.timedelta(hours=2))
    just_after = parse_time(
        (T0 + dt.timedelta(hours=5, microseconds=1)).astimezone(plus_two).isoformat()
    )
    assert seqs(iter_entries(engine, AuditQuery(until=just_after))) == [1, 2]
    assert parse_time("2025-03-01T11:00:00+02:00") == T0


def test_limit_offset_order_and_snapshot_page_through_batches(
    log: tuple[Path, Engine, list[dict[str, Any]]],
) -> None:
    _, engine, everything = log
    wine = [e["seq"] for e in everything if e["model"] == "wine"]
    page = AuditQuery(model=("wine",), offset=3, limit=7)
    assert seqs(iter_entries(engine, page, batch=2)) == wine[3:10]
    newest = AuditQuery(model=("wine",), limit=5, newest_first=True)
    assert seqs(iter_entries(engine, newest, batch=2)) == wine[::-1][:5]
    assert seqs(iter_entries(engine, AuditQuery(max_seq=12), batch=5)) == list(range(1, 13))
    assert seqs(iter_entries(engine, AuditQuery(limit=0))) == []


def test_csv_and_json_lines_round_trip_every_column(
    log: tuple[Path, Engine, list[dict[str, Any]]],
) -> None:
    _, engine, everything = log
    as_csv, as_jsonl = io.StringIO(), io.StringIO()
    assert write_csv(iter_entries(engine, AuditQuery()), as_csv) == len(everything)
    assert write_jsonl(iter_entries(engine, AuditQuery()), as_jsonl) == len(everything)
    from_jsonl = [json.loads(line) for line in as_jsonl.getvalue().splitlines()]
    rows = list(csv.DictReader(io.StringIO(as_csv.getvalue(), newline="")))
    assert list(rows[0]) == list(COLUMNS)
    from_csv = [dict(row, seq=int(row["seq"]), details=json.loads(row["details"])) for row in rows]
    assert from_csv == from_jsonl == everything
    assert from_csv[5]["reason"] == 'a "quoted", comma\nand newline — ünïcode'
    record = AuditRecord(**{**everything[5], "details": json.dumps(everything[5]["details"])})
    assert record.entry() == {k: v for k, v in everything[5].items() if not k.endswith("_hash")}


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: parse_time("2025-02-30"), "is not a date or time"),
        (lambda: parse_time("yesterday"), "is not a date or time"),
        (lambda: AuditQuery(outcome=("ok",)), "unknown outcome 'ok'"),
        (lambda: AuditQuery(since=T0, until=T0), "is not before --until"),
        (lambda: AuditQuery(limit=-1), "cannot be negative"),
    ],
)
def test_bad_filters_are_usage_errors(build: Callable[[], Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        build()


def test_the_cli_answers_in_every_format(log: tuple[Path, Engine, list[dict[str, Any]]]) -> None:
    home, _, everything = log
    runner = CliRunner()
    base = ["audit", "query", "--home", str(home), "--action", "spoke.rollout.*"]
    expected = [e for e in everything if e["action"].startswith("spoke.rollout.")]
    expected = [e for e in expected if e["outcome"] in ("failure", "refused")]
    filters = ["--outcome", "failure", "--outcome", "refused"]
    jsonl = runner.invoke(main, [*base, *filters, "--format", "jsonl"])
    assert jsonl.exit_code == 0, jsonl.output
    assert [json.loads(line) for line in jsonl.stdout.splitlines()] == expected
    as_json = runner.invoke(main, [*base, *filters, "--json", "--limit", "2"])
    assert [json.loads(line)["seq"] for line in as_json.stdout.splitlines()] == seqs(expected[:2])
    csv_out = runner.invoke(main, [*base, *filters, "--format", "CSV"])
    assert [int(r["seq"]) for r in csv.DictReader(io.StringIO(csv_out.stdout))] == seqs(expected)
    dates = ["--since", "2025-03-03", "--until", "2025-03-05"]
    table = runner.invoke(main, [*base, *filters, *dates], env={"COLUMNS": "160"})
    assert table.exit_code == 0, table.output
    in_range = [e for e in expected if "2025-03-03" <= e["time"][:10] <= "2025-03-05"]
    lines = [line.split() for line in table.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [int(cells[0]) for cells in lines] == seqs(in_range) != []
    for cells, entry in zip(lines, in_range, strict=True):
        assert cells[3:6] == [
            entry["principal"],
            entry["action"],
            f"{entry['model']}@{entry['version']}",
        ]
        assert entry["outcome"] in cells


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2025-03-32"], "'2025-03-32' is not a date or time"),
        (["--until", "soon"], "'soon' is not a date or time"),
        (["--format", "xml"], "unknown output format 'xml'"),
        (["--outcome", "maybe"], "unknown outcome 'maybe'"),
        (
            ["--since", "2025-03-05", "--until", "2025-03-01"],
            "--since 2025-03-05T00:00:00+00:00 is",
        ),
    ],
)
def test_bad_cli_filters_exit_3_with_a_clear_message(
    log: tuple[Path, Engine, list[dict[str, Any]]], args: list[str], message: str
) -> None:
    home, _, _ = log
    result = CliRunner().invoke(main, ["audit", "query", "--home", str(home), *args])
    assert result.exit_code == 3
    assert f"error: {message}" in result.stderr
    assert "what to do:" in result.stderr
    assert result.stdout == ""


def test_a_tampered_log_still_answers_queries(tmp_path: Path) -> None:
    engine = build_log(tmp_path / "home", count=12)
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET principal = 'mallory' WHERE seq = 4"))
    found = list(iter_entries(engine, AuditQuery(principal=("mallory",))))
    assert seqs(found) == [4]
    assert len(list(iter_entries(engine, AuditQuery()))) == 12
