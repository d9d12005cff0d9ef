"""What each screen looks like, at 120×40 and at 80×24 (SVG snapshots under __snapshots__/).

A failing snapshot shows the difference in the report; after a deliberate change, look at the
new pictures and update them with `pytest --snapshot-update tests/test_dashboard_snapshots.py`.
"""

from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from test_dashboard import settle
from textual.pilot import Pilot
from textual.widgets import Input

from domain.commands import parse_command
from service.demo import demo_commands
from service.session import Session
from tui.app import LandLedgerApp

CUTOFF = date(2022, 3, 20)
SIZES = [(120, 40), (80, 24)]


@pytest.fixture(autouse=True)
def colours(monkeypatch: pytest.MonkeyPatch) -> None:
    """The snapshots are in colour; a NO_COLOR in the environment would change every one."""
    monkeypatch.delenv("NO_COLOR", raising=False)


class RecordedAt(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> "RecordedAt":
        return cls(2022, 3, 20, 2, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("snap") / "demo.db")
    session = Session(path, "zhang")
    config = session.ledger.campaign().config
    # Recorded at a fixed time: the case screen's timeline shows it.
    with mock.patch("service.ledger.datetime", RecordedAt):
        session.record([parse_command(c) for c in demo_commands(config, 300)])
    session.close()
    return path


async def steady(pilot: Pilot[None]) -> None:
    """Every query answered, no cursor blinking: the same picture on every run."""
    app = pilot.app
    assert isinstance(app, LandLedgerApp)
    await settle(app, pilot)
    for field in app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()


def then(*keys: str) -> Callable[[Pilot[None]], Any]:
    async def run(pilot: Pilot[None]) -> None:
        await steady(pilot)
        for key in keys:
            await pilot.press(key)
            await steady(pilot)

    return run


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(
    "keys",
    [(), ("2",), ("3",), ("4",), ("5",), ("3", "tab", "enter")],
    ids=["overview", "ledger", "alerts", "audit", "transfer", "case"],
)
def test_screens_look_right(
    snap_compare: Any, store: str, size: tuple[int, int], keys: tuple[str, ...], tmp_path: Path
) -> None:
    app = LandLedgerApp(Session(store, "zhang"), as_of=CUTOFF)
    assert snap_compare(app, terminal_size=size, run_before=then(*keys))
