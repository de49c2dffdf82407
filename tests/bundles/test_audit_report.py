"""``airlock audit report``: the HTML report counts right, lists every action, and tells the truth
about the log's integrity (a hand-edited entry makes it say BROKEN and the command exit 10)."""

from __future__ import annotations

import datetime as dt
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text

from airlock.bundles.audit import AuditLog, AuditQuery, AuditRecord, check_log, render_report
from airlock.bundles.cli import main
from airlock.bundles.config import write_config
from airlock.bundles.schema import create_home_database

T0 = dt.datetime(2025, 6, 2, 8, 0, tzinfo=dt.UTC)
# (hours after T0, action, outcome, principal, change request)
ENTRIES = [
    (0, "hub.change.approve", "success", "carol", "CHG100"),
    (1, "spoke.import", "success", "alice", "CHG100"),
    (2, "spoke.rollout.ring-started", "success", "airlock-rollout-engine", "CHG100"),
    (3, "spoke.rollout.promoted", "refused", "bob", "CHG100"),
    (4, "spoke.node.enroll", "success", "alice", ""),
    (50, "spoke.rollout.rolled-back", "failure", "airlock-rollout-engine", "CHG101"),
    (75, "spoke.rollout.complete", "success", "airlock-rollout-engine", "CHG100"),
]


def build_home(home: Path, role: str = "spoke") -> Engine:
    config = write_config(home, role, {"site_id": "plant-7"})
    engine = create_home_database(config, AuditRecord)  # a home at this release's schema
    log = AuditLog(engine, "spoke", site="plant-7")
    for hours, action, outcome, principal, change in ENTRIES:
        log.record(
            action,
            outcome,
            principal=principal,
            change_request=change,
            node="n1" if "rollout" in action else "",
            model="iris",
            version="3",
            reason="<script>alert('x')</script>" if outcome == "refused" else "",
            details={"step": hours},
            when=T0 + dt.timedelta(hours=hours),
        )
    return engine


class Page(HTMLParser):
    """The parts of a report page the tests read: tables by id, entry rows, external refs."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.entry_rows: list[str] = []
        self.unverified: list[str] = []
        self.external: list[str] = []
        self.scripts = 0
        self._table = ""
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name):
                self.external.append(str(values[name]))
        if tag == "script":
            self.scripts += 1
        if tag == "table":
            self._table = values.get("id") or values.get("class") or ""
            self.tables.setdefault(self._table, [])
        elif tag == "tr":
            self._row = []
            if "entry" in (values.get("class") or ""):
                self.entry_rows.append(str(values["id"]))
                if "unverified" in (values.get("class") or ""):
                    self.unverified.append(str(values["id"]))
        elif tag in ("td", "th"):
            self._cell = []

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None


def counts(page: Page, table: str) -> dict[str, int]:
    return {row[0]: int(row[1]) for row in page.tables[table][1:]}


def test_a_report_of_a_time_range_counts_and_lists_every_matching_action(tmp_path: Path) -> None:
    engine = build_home(tmp_path / "home")
    out = tmp_path / "report.html"
    query = AuditQuery(since=T0 + dt.timedelta(hours=1), until=T0 + dt.timedelta(hours=51))
    summary = render_report(
        engine,
        query,
        check_log(engine, None),
        out,
        title="June <rollout>",
        source="home",
        generated_at=T0,
    )
    html = out.read_text()
    page = Page(html)
    assert summary.total == 5
    assert 'data-count="5"' in html and "2025-06-02T09:00:00+00:00" in html
    assert page.entry_rows == ["seq-2", "seq-3", "seq-4", "seq-5", "seq-6"]
    assert counts(page, "by-outcome") == {"success": 3, "refused": 1, "failure": 1}
    assert counts(page, "by-principal") == {"alice": 2, "airlock-rollout-engine": 2, "bob": 1}
    assert counts(page, "by-action")["spoke.rollout.rolled-back"] == 1
    timeline = page.tables["timeline"][1:]
    assert [row[0] for row in timeline] == ["2025-06-02", "2025-06-03", "2025-06-04"]
    assert [int(row[1]) for row in timeline] == [4, 0, 1]  # the empty day is shown
    entries = {row[0]: row for row in page.tables["entries"][1:]}
    _, time, principal, action, label, where, outcome, change = entries["4"][:8]
    assert (time, principal, action, label) == (
        "2025-06-02T11:00:00+00:00",
        "bob",
        "spoke.rollout.promoted",
        "iris@3",
    )
    assert where.startswith("spoke · plant-7 · node n1") and (outcome, change) == (
        "refused",
        "CHG100",
    )
    assert entries["6"][6] == "failure" and entries["6"][7] == "CHG101"
    # Everything is escaped and self-contained.
    assert "<script>" not in html and "&lt;script&gt;alert(" in html
    assert "June &lt;rollout&gt;" in html
    assert page.scripts == 0 and page.external == []
    # The verification status of the whole log, against what it was checked.
    assert 'data-ok="true"' in html and "all 7 entries verified" in html
    assert check_log(engine, None).root in html and "No signed checkpoint was checked" in html


def test_a_change_request_report_from_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    build_home(home)
    out = tmp_path / "chg.html"
    args = ["audit", "report", "--home", str(home), "--change-request", "CHG100"]
    result = CliRunner().invoke(main, [*args, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["entries"] == 5 and answer["log"]["ok"] is True
    assert answer["by_outcome"] == {"success": 4, "refused": 1}
    page = Page(out.read_text())
    assert page.entry_rows == ["seq-1", "seq-2", "seq-3", "seq-4", "seq-7"]
    assert "<h1>Change CHG100</h1>" in out.read_text()
    timeline = [(row[0], int(row[1])) for row in page.tables["timeline"][1:]]
    assert timeline == [("2025-06-02", 4), ("2025-06-03", 0), ("2025-06-04", 0), ("2025-06-05", 1)]


def test_a_tampered_log_is_reported_broken_and_exits_10(tmp_path: Path) -> None:
    home = tmp_path / "home"
    engine = build_home(home)
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET outcome = 'success' WHERE seq = 4"))
    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["audit", "report", "--home", str(home), "--out", str(out)])
    assert result.exit_code == 10
    assert "audit log check failed at entry 4 (modified)" in result.stderr
    html = out.read_text()
    page = Page(html)
    assert 'data-ok="false"' in html and "Log BROKEN at entry 4 (modified)" in html
    assert "entry 4: its content does not match its hash" in html
    assert len(page.entry_rows) == 7  # the report still lists everything …
    assert page.unverified == ["seq-4", "seq-5", "seq-6", "seq-7"]  # … marking what is unproven


def test_max_rows_lists_fewer_but_counts_all(tmp_path: Path) -> None:
    engine = build_home(tmp_path / "home")
    out = tmp_path / "r.html"
    render_report(
        engine,
        AuditQuery(),
        check_log(engine, None),
        out,
        title="t",
        source="s",
        generated_at=T0,
        max_rows=2,
    )
    html = out.read_text()
    assert len(Page(html).entry_rows) == 2 and 'data-count="7"' in html
    assert re.search(r"Showing the first 2 of 7 entries", html)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "June"], "'June' is not a date or time"),
        (["--max-rows", "-1"], "--max-rows cannot be negative"),
    ],
)
def test_bad_report_arguments_exit_3_and_write_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    home = tmp_path / "home"
    build_home(home)
    out = tmp_path / "r.html"
    result = CliRunner().invoke(
        main, ["audit", "report", "--home", str(home), "--out", str(out), *args]
    )
    assert result.exit_code == 3 and f"error: {message}" in result.stderr
    assert not out.exists()


def test_an_empty_selection_still_reports_the_log_status(tmp_path: Path) -> None:
    engine = build_home(tmp_path / "home")
    out = tmp_path / "r.html"
    summary = render_report(
        engine,
        AuditQuery(change_request=("CHG999",)),
        check_log(engine, None),
        out,
        title="t",
        source="s",
        generated_at=T0,
    )
    html = out.read_text()
    assert summary.total == 0 and "No entries match." in html and 'data-ok="true"' in html


def test_the_report_names_the_signed_checkpoint_it_checked_against(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    engine = build_home(home, role="hub")
    runner = CliRunner(env={"AIRLOCK_HUB_PASSPHRASE": "a hub passphrase for tests"})
    signed = runner.invoke(main, ["audit", "checkpoint", "--home", str(home), "--json"])
    assert signed.exit_code == 0, signed.output
    checkpoint = json.loads(signed.stdout)
    AuditLog(engine, "hub").record("hub.site.add", "success", principal="alice")
    out = tmp_path / "r.html"
    result = runner.invoke(main, ["audit", "report", "--home", str(home), "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert 'data-ok="true"' in html and "all 9 entries verified" in html
    shown = re.search(r'<span id="checkpoint">(.*?)</span>', html)
    assert shown is not None and "size=8" in shown.group(1)
    assert checkpoint["origin"] in shown.group(1)
    assert "1 signed checkpoint compared with it (signatures checked" in html
    assert "1 entries after it are not yet covered" in html
    # A checkpoint the home's key did not sign breaks the log's status.
    other = tmp_path / "other"
    build_home(other, role="hub")
    assert runner.invoke(main, ["audit", "checkpoint", "--home", str(other)]).exit_code == 0
    key = other / "audit-checkpoint-key.pem"
    wrong = runner.invoke(
        main, ["audit", "report", "--home", str(home), "--out", str(out), "--key", str(key)]
    )
    assert wrong.exit_code == 10 and "(bad-signature)" in wrong.stderr
    assert 'data-ok="false"' in out.read_text()
