"""``airlock --help`` and ``airlock spoke --help``: a site admin can find their way without docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers.spokeenv import Invoke, run_airlock

from airlock.bundles.errors import EXIT_CODES
from airlock.spoke.site import PASSPHRASE_ENV

REPO = Path(__file__).resolve().parents[2]


def commands_listed(help_text: str) -> dict[str, str]:
    """The ``Commands:`` section of a click help page: name → one-line summary."""
    section = help_text.split("Commands:\n", 1)[1]
    return dict(re.findall(r"^  (\S+)\s+(.+)$", section, flags=re.MULTILINE))


def test_airlock_help_names_every_role_and_the_exit_codes(tmp_path: Path) -> None:
    proc = run_airlock("--help", cwd=tmp_path)  # the installed entry point, in a real process
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("Usage: airlock [OPTIONS] COMMAND [ARGS]...")
    assert "Airlock moves signed ML models across an air gap." in proc.stdout
    listed = commands_listed(proc.stdout)
    assert set(listed) == {"agent", "audit", "bundle", "ceremony", "events", "hub", "spoke"}
    assert listed["spoke"] == "Site admin: import and verify bundles at an air-gapped site."
    assert re.search(
        r"^\s+spoke\s+site admins: import and verify bundles, status$", proc.stdout, re.M
    )
    assert "Exit codes are documented in docs/exit-codes.md." in proc.stdout
    documented = (REPO / "docs" / "exit-codes.md").read_text()
    for code in set(EXIT_CODES.values()):
        assert f"| {code} |" in documented
    assert list(tmp_path.iterdir()) == [], "help creates nothing"


def test_spoke_help_lists_every_command_with_a_complete_summary(airlock: Invoke) -> None:
    result = airlock("spoke", "--help")
    assert result.exit_code == 0
    text = result.stdout
    assert text.startswith("Usage: airlock spoke [OPTIONS] COMMAND [ARGS]...")
    listed = commands_listed(text)
    assert set(listed) == {
        "init",
        "import",
        "status",
        "attestations",
        "node",
        "rollout",
        "serve",
        "simulate",
        "export-metrics",
        "identity",
        "trust",
        "db",
    }
    for name, summary in listed.items():
        assert not summary.endswith("..."), f"the summary of {name!r} is cut off: {summary!r}"
        assert summary.endswith("."), summary
    for step in ("airlock spoke init --site-id S", "airlock spoke import", "airlock spoke status"):
        assert step in text
    assert PASSPHRASE_ENV in text
    assert airlock("spoke", "-h").stdout == text


@pytest.mark.parametrize(
    ("command", "phrases"),
    [
        ("import", ["BUNDLE", "envelope signature", "Any failure changes nothing.", "--json"]),
        ("init", ["--site-id", "--image-root", "--director-root", "--allow-unencrypted", "--json"]),
        ("status", ["staged models", "--json"]),
    ],
)
def test_each_spoke_command_explains_itself(
    airlock: Invoke, tmp_path: Path, command: str, phrases: list[str]
) -> None:
    result = airlock("spoke", command, "--help")
    assert result.exit_code == 0
    text = result.stdout
    assert text.startswith(f"Usage: airlock spoke {command} [OPTIONS]")
    assert "--home DIRECTORY" in text and "AIRLOCK_SPOKE_HOME" in text
    for phrase in phrases:
        assert phrase in text, phrase


def test_an_unknown_spoke_command_is_a_usage_error(airlock: Invoke) -> None:
    result = airlock("spoke", "imprt")
    assert result.exit_code == EXIT_CODES["click usage"]
    assert "No such command 'imprt'" in result.stderr
