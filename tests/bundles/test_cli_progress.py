"""Progress of long exports and imports: a bar on a terminal, JSON lines, or nothing.

The renderers are driven through the :class:`~airlock.bundles.progress.Progress`
protocol as the volume layer drives them; a terminal is rich's own
``Console(force_terminal=True)`` writing into a string.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from rich.console import Console

from airlock.bundles.cli import progress_for
from airlock.bundles.cli._progress import JSON_INTERVAL, JsonProgress
from airlock.bundles.progress import NO_PROGRESS, Progress

MiB = 1 << 20


def drive(progress: Progress, *, volumes: int = 3, per_volume: int = 2) -> None:
    """An import of ``volumes`` volumes of ``per_volume`` MiB each, reported as the layer does."""
    progress.begin("import", volumes * per_volume * MiB)
    for number in range(1, volumes + 1):
        progress.volume(f"0123456789abcdef-data-{number:03d}-of-{volumes:03d}.age", number, volumes)
        for _ in range(per_volume):
            progress.advance(MiB)
    progress.end()


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line)["progress"] for line in text.splitlines()]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_terminal_gets_a_bar_with_bytes_rate_time_left_and_the_volume() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120, color_system=None)
    drive(progress_for(False, console), volumes=7)
    shown = buffer.getvalue()
    assert "import" in shown
    assert "volume 7 of 7" in shown
    assert "14.0/14.0 MiB" in shown  # bytes done / total
    assert "/s" in shown  # the rate
    assert "0:00:00" in shown  # the time left, at the end


def test_the_bar_names_the_current_volume_while_it_runs() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120, color_system=None)
    progress = progress_for(False, console)
    progress.begin("export", 4 * MiB)
    progress.volume("0123456789abcdef-data-003-of-007.age", 3, 7)
    progress.advance(MiB)
    progress.end()
    shown = buffer.getvalue()
    assert "volume 3 of 7" in shown
    assert "1.0/4.0 MiB" in shown
    assert "export" in shown


def test_no_terminal_and_no_json_shows_nothing() -> None:
    buffer = io.StringIO()  # a pipe or a log file: not a terminal
    progress = progress_for(False, buffer)
    assert progress is NO_PROGRESS
    drive(progress)
    drive(progress_for(False, Console(file=buffer, force_terminal=False)))
    assert buffer.getvalue() == ""


def test_json_lines_parse_and_say_phase_volume_done_total_and_rate() -> None:
    buffer = io.StringIO()
    drive(progress_for(True, buffer), volumes=3, per_volume=2)
    got = lines(buffer.getvalue())
    assert set(got[0]) == {"phase", "state", "volume", "done", "total", "rate"}
    assert got[0] == {
        "phase": "import",
        "state": "begin",
        "volume": None,
        "done": 0,
        "total": 6 * MiB,
        "rate": 0,
    }
    last = got[-1]
    assert (last["state"], last["done"], last["total"]) == ("end", 6 * MiB, 6 * MiB)
    assert last["volume"] == {
        "name": "0123456789abcdef-data-003-of-003.age",
        "number": 3,
        "of": 3,
    }
    assert last["rate"] > 0
    assert [line["state"] for line in got[1:-1]] == ["running"] * (len(got) - 2)


def test_json_goes_as_json_even_on_a_terminal() -> None:
    buffer = io.StringIO()
    drive(progress_for(True, Console(file=buffer, force_terminal=True)))
    got = lines(buffer.getvalue())
    assert (got[0]["state"], got[-1]["state"]) == ("begin", "end")
    assert "\x1b[" not in buffer.getvalue()  # no bar, no terminal codes


def test_json_lines_are_rate_limited_to_about_four_a_second_plus_begin_and_end() -> None:
    buffer, clock = io.StringIO(), FakeClock()
    progress = JsonProgress(buffer, clock=clock)
    progress.begin("export", 1000 * MiB)
    for _ in range(1000):  # 1,000 advances over 10 seconds
        clock.now += 0.01
        progress.advance(MiB)
    progress.end()
    got = lines(buffer.getvalue())
    running = [line for line in got if line["state"] == "running"]
    assert got[0]["state"] == "begin" and got[-1]["state"] == "end"
    assert 10 / JSON_INTERVAL - 2 <= len(running) <= 10 / JSON_INTERVAL
    assert got[-1]["done"] == 1000 * MiB
    assert got[-1]["rate"] == pytest.approx(100 * MiB, rel=0.01)  # 1,000 MiB in 10 s


def test_each_phase_gets_its_own_begin_and_end_line() -> None:
    buffer, clock = io.StringIO(), FakeClock()
    progress = JsonProgress(buffer, clock=clock)
    progress.begin("import", 2 * MiB)
    progress.advance(2 * MiB)
    progress.begin("rebuild", MiB)  # a new phase ends the open one first
    progress.advance(MiB)
    progress.end()
    progress.end()  # a second end adds nothing
    got = [(line["phase"], line["state"], line["done"]) for line in lines(buffer.getvalue())]
    assert got == [
        ("import", "begin", 0),
        ("import", "end", 2 * MiB),
        ("rebuild", "begin", 0),
        ("rebuild", "end", MiB),
    ]


def test_no_progress_does_nothing() -> None:
    drive(NO_PROGRESS)  # and raises nothing
