"""The dashboard as a user drives it: real stores, real keys, through Textual's Pilot."""

import io
import sqlite3
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from helpers import find, jsonl
from rich.console import Console
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input, OptionList, Select, Static, TabbedContent
from textual.worker import WorkerState

from domain.commands import parse_command
from service.demo import demo_commands
from service.session import Session
from tui.app import ChinesePalette, HelpScreen, LandLedgerApp
from tui.case import CaseScreen
from tui.ledger_table import LedgerTable
from tui.overview import KPIS, AlertsPane

CUTOFF = date(2022, 3, 20)
KPI_NAMES = [name for _, name in KPIS]


def demo_store(path: Path, cases: int = 60) -> str:
    session = Session(str(path), "zhang")
    config = session.ledger.campaign().config
    session.record([parse_command(c) for c in demo_commands(config, cases)])
    session.close()
    return str(path)


@pytest.fixture
def store(tmp_path: Path) -> str:
    return demo_store(tmp_path / "demo.db")


def static_text(app: LandLedgerApp, selector: str) -> str:
    """What a Static shows, as plain text."""
    console = Console(width=200, file=io.StringIO(), record=True)
    widget = app.screen.query_one(selector, Static)
    content = widget.content or widget.render()
    console.print(content if not isinstance(content, str) else Text(content))
    return console.export_text()


async def settle(app: LandLedgerApp, pilot: Pilot[None]) -> None:
    """Wait until every query the screens started has answered (the live poll aside). Quiet
    twice running: a query's answer can start the next (the 预警 list's first kind reads its
    cases) through a message not handled yet when the first one ends."""
    quiet = 0
    for _ in range(300):
        await pilot.pause(0.02)
        await pilot.pause()  # the messages posted meanwhile are handled
        busy = [
            w
            for w in app.workers
            if w.group != "poll" and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
        ]
        quiet = 0 if busy else quiet + 1
        if quiet == 2:
            break
    await pilot.pause()


async def test_number_keys_switch_screens_and_the_header_names_actor_and_cutoff(store: str) -> None:
    app = LandLedgerApp(Session(store, "zhang"), as_of=CUTOFF)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        header = static_text(app, "#app-header")
        assert "zhang" in header and "截至 2022-03-20" in header
        tabs = app.screen.query_one(TabbedContent)
        for key, tab in (("3", "alerts"), ("4", "audit"), ("5", "transfer"), ("1", "overview")):
            await pilot.press(key)
            assert tabs.active == tab
        kpis = static_text(app, "#kpis")
        assert "发现" in kpis and "整改率" in kpis


async def test_the_overview_shows_the_same_figures_as_stats(store: str) -> None:
    session = Session(store, "zhang")
    total = session.stats(as_of=CUTOFF)["total"]
    app = LandLedgerApp(session, as_of=CUTOFF)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        kpis = static_text(app, "#kpis").split()
        assert str(total["found"]) in kpis and str(total["violations"]) in kpis


async def test_an_alert_opens_its_cases_and_enter_opens_a_case(store: str) -> None:
    app = LandLedgerApp(Session(store, "zhang"), as_of=CUTOFF)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        await settle(app, pilot)
        table = app.screen.query_one("#alert-cases", DataTable)
        assert table.row_count > 0
        first_ref = str(table.get_row_at(0)[0])
        table.focus()
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, CaseScreen)
        assert app.screen.ref == first_ref
        assert first_ref in static_text(app, "#case-title")
        assert app.screen.query_one("#timeline", DataTable).row_count >= 1
        await pilot.press("escape")
        assert not isinstance(app.screen, CaseScreen)


async def test_at_80_columns_every_alert_button_shows_whole_and_opens_its_list(
    store: str,
) -> None:
    app = LandLedgerApp(Session(store, "zhang"), as_of=CUTOFF)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        buttons = list(app.screen.query("#alert-buttons Button").results(Button))
        assert len(buttons) >= 5
        for button in buttons:  # inside the screen, its label whole
            assert button.region.right <= 80 and button.region.width >= len(str(button.label))
        last = buttons[-1]  # the 预警 screen is built by this press (it was never shown)
        await pilot.click(last)
        await settle(app, pilot)
        assert app.screen.query_one(TabbedContent).active == "alerts"
        title = static_text(app, "#alert-title")
        assert title.startswith(app.screen.query_one(AlertsPane).alerts[-1].title)


async def test_a_digit_typed_in_a_field_stays_in_the_field(store: str) -> None:
    app = LandLedgerApp(Session(store, "zhang"), as_of=CUTOFF)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("4")
        field = app.screen.query_one("#as-of-b")
        field.focus()
        await pilot.press("2")
        assert app.screen.query_one(TabbedContent).active == "audit"
        assert field.value == "2"  # type: ignore[attr-defined]


async def test_help_and_palette_speak_chinese_and_ctrl_q_quits(store: str) -> None:
    app = LandLedgerApp(Session(store, "zhang"), as_of=CUTOFF)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        assert "总览" in str(app.screen.query_one("#help-text", Static).render())
        await pilot.press("escape")
        commands = [name for name, _, _ in app.palette_commands(app.screen)]
        assert "切换到台账" in commands and "退出" in commands
        system = [c.title for c in app.get_system_commands(app.screen)]
        assert system == ["退出", "帮助"]
        await pilot.press("ctrl+p")
        await settle(app, pilot)
        assert isinstance(app.screen, ChinesePalette)
        assert app.screen.query_one(Input).placeholder == "搜索命令……"
        await pilot.press("escape")
        await pilot.press("ctrl+c")
        assert any("ctrl+q" in n.message for n in app._notifications)
        await pilot.press("ctrl+q")
    assert app.return_code == 0


async def test_another_terminals_record_appears_without_a_keypress(db_url: str) -> None:
    """On both backends: the dashboard polls the log's position, not the keyboard."""
    store = db_url
    session = Session(store, "zhang")
    session.record([parse_command(find(f"S-{n}", on="2022-02-01")) for n in range(3)])
    app = LandLedgerApp(session, as_of=CUTOFF)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        before = static_text(app, "#kpis").split()
        lines = jsonl([find("LIVE-0001", on="2022-03-01")])
        subprocess.run(
            [sys.executable, "-m", "tui.cli", "--db", store, "record"],
            input=lines,
            text=True,
            check=True,
        )
        started = time.monotonic()
        # No key is pressed: only the dashboard's own polling can bring the new case in.
        while static_text(app, "#kpis").split() == before and time.monotonic() - started < 20:
            await pilot.pause(0.1)
        after = static_text(app, "#kpis").split()
        assert after != before


async def test_user_data_is_never_markup(tmp_path: Path) -> None:
    session = Session(str(tmp_path / "m.db"), "zhang")
    session.record([parse_command(find("M-1", party_name="[red]张三[/red]", on="2022-02-01"))])
    app = LandLedgerApp(session, as_of=CUTOFF)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.open_case("M-1")
        await settle(app, pilot)
        assert "[red]张三[/red]" in static_text(app, "#case-left")


async def test_a_fault_of_the_store_is_told_as_the_command_line_tells_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another program holding the write lock past the busy timeout: the screen names the
    store and what to do, in Chinese, not the driver's English."""
    db = str(tmp_path / "f.db")
    session = Session(db, "zhang")
    session.record([parse_command(find("F-1", on="2022-02-01"))])

    def locked(*_: Any, **__: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(session, "stats", locked)
    app = LandLedgerApp(session, as_of=CUTOFF)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        told = [n.message for n in app._notifications]
        assert f"数据库 {db} 正被另一个程序写入，等了 30 秒仍未轮到，本次未写入，请稍后重试" in told
        assert not [m for m in told if "OperationalError" in m or "database is locked" in m]


def test_demo_and_tui_print_the_overview_where_output_is_not_a_terminal(tmp_path: Path) -> None:
    db = str(tmp_path / "d.db")
    done = subprocess.run(
        [sys.executable, "-m", "tui.cli", "--db", db, "demo", "--cases", "50"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "截至 2022-03-20" in done.stdout and "合计" in done.stdout
    assert "整改逾期未到位" in done.stdout
    assert "50 个案件" in done.stderr
    again = subprocess.run(
        [sys.executable, "-m", "tui.cli", "--db", db, "tui", "--as-of", "2022-02-28"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0 and "截至 2022-02-28" in again.stdout
    wrong = subprocess.run(
        [sys.executable, "-m", "tui.cli", "--db", db, "tui", "--as-of", "2022-02-30"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert wrong.returncode == 1 and "不是有效日期" in wrong.stderr


async def test_acting_on_a_case_shows_errors_at_the_field_then_saves_everywhere(
    db_url: str,
) -> None:
    """办理 立案 on a found site: an empty 立案编号 is refused at the field and nothing is
    written; filled in, it is saved through the same call as `record`, and the case, the
    overview and `history` show it."""
    session = Session(db_url, "zhang")
    session.record([parse_command(find("ACT-1", on="2022-02-01"))])
    app = LandLedgerApp(session, as_of=CUTOFF)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        filed_before = session.stats(as_of=CUTOFF)["total"]["filed"]
        app.open_case("ACT-1")
        await settle(app, pilot)
        await pilot.press("a")
        await settle(app, pilot)
        menu = app.screen.query_one("#commands", OptionList)
        titles = [str(menu.get_option_at_index(i).prompt) for i in range(menu.option_count)]
        assert "立案" in titles and "重开" not in titles
        menu.highlighted = titles.index("立案")
        await pilot.press("enter")
        await settle(app, pilot)
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        error = app.screen.query_one("#error-case_no", Static)
        assert "必填" in static_text(app, "#error-case_no") and error.display
        assert len(session.history("ACT-1")) == 1  # nothing written
        app.screen.query_one("#field-case_no", Input).value = "上自然资立〔2022〕9号"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert isinstance(app.screen, CaseScreen)
        assert "已立案" in static_text(app, "#case-title")
        assert app.screen.query_one("#timeline", DataTable).row_count == 2
        titles = [entry.title for entry in session.history("ACT-1")]
        assert titles == ["发现", "立案"]
        await pilot.press("escape")
        await settle(app, pilot)
        kpis = static_text(app, "#kpis").split()
        assert kpis[kpis.index("立案") + len(KPI_NAMES) :][0] == str(filed_before + 1)


async def test_the_ledger_searches_filters_and_opens_a_case(store: str) -> None:
    session = Session(store, "zhang")
    app = LandLedgerApp(session, as_of=CUTOFF)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        await settle(app, pilot)
        total = session.ledger.ledger_recorder.count_refs()
        # Opened at a past date: the count says the rows are the latest record, not that date's.
        assert static_text(app, "#ledger-count").strip() == f"共 {total} 件（最新记录）"
        target = session.rows(["SD-2022-0007"])[0]
        party = target.case.site.party_name
        await pilot.press("slash")
        app.screen.query_one("#ledger-search", Input).value = party
        await pilot.press("enter")
        await settle(app, pilot)
        table = app.screen.query_one(LedgerTable)
        assert table.has_focus and 0 < table.row_count < total
        shown = [table.row(i) for i in range(table.row_count)]
        assert all(line is not None and party in line.party_name for line in shown)
        await pilot.press("escape")  # leaves the table: nothing to clear there
        app.screen.query_one("#ledger-search", Input).focus()
        await pilot.press("escape")  # in the search box: clears it
        await settle(app, pilot)
        assert table.row_count == total
        township = target.case.site.township
        app.screen.query_one("#filter-township", Select).value = township
        await settle(app, pilot)
        in_township = session.stats()["groups"]
        expected = next(g["found"] for g in in_township if g["key"] == township)
        assert table.row_count == expected
        table.focus()
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, CaseScreen)
        first = table.row(0)
        assert first is not None and app.screen.ref == first.ref


async def test_audit_compares_two_cutoffs_and_browses_the_log(tmp_path: Path) -> None:
    session = Session(str(tmp_path / "a.db"), "zhang")
    session.record([parse_command(find("AU-1", on="2022-02-01"))])
    other = Session(str(tmp_path / "a.db"), "li")
    other.record([parse_command(find("AU-2", on="2022-03-01"))])
    other.close()
    app = LandLedgerApp(session, as_of=CUTOFF)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("4")
        await settle(app, pilot)
        screen = app.screen
        screen.query_one("#as-of-a", Input).value = "2022-02-15"
        screen.query_one("#as-of-b", Input).value = "2022-03-15"
        await pilot.click("#compare")
        await settle(app, pilot)
        table = screen.query_one("#audit-table", DataTable)
        rows = {str(table.get_row_at(i)[0]): table.get_row_at(i) for i in range(table.row_count)}
        assert [str(c) for c in rows["发现"][1:]] == ["1", "2", "+1"]
        assert [str(c) for c in rows["AU-2"][1:3]] == ["（尚无）", "已发现"]
        assert "AU-1" not in rows  # the same at both cutoffs
        await pilot.click("#ledger-at")
        await settle(app, pilot)
        assert [str(table.get_row_at(i)[0]) for i in range(table.row_count)] == ["AU-1"]
        screen.query_one("#as-of-b", Input).value = "2022-02-30"
        await pilot.click("#compare")
        await settle(app, pilot)
        assert app.focused is screen.query_one("#as-of-b", Input)  # the field to correct
        assert str(table.get_row_at(0)[0]) == "AU-1" and table.row_count == 1  # as it was
        screen.query_one("#log-actor", Input).value = "li"
        await pilot.click("#browse")
        await settle(app, pilot)
        assert table.row_count == 1 and str(table.get_row_at(0)[1]) == "AU-2"


async def test_a_supervised_case_is_listed_among_the_alerts(tmp_path: Path) -> None:
    session = Session(str(tmp_path / "f.db"), "zhang")
    session.record(
        [
            parse_command(find("F-1", on="2022-02-01")),
            parse_command(find("F-2", on="2022-02-01")),
            parse_command({"cmd": "flag", "ref": "F-2", "on": "2022-02-03", "kind": "挂牌督办"}),
        ]
    )
    app = LandLedgerApp(session, as_of=CUTOFF)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.click("#alert-supervised")
        await settle(app, pilot)
        table = app.screen.query_one("#alert-cases", DataTable)
        assert [str(table.get_row_at(i)[0]) for i in range(table.row_count)] == ["F-2"]


async def test_audit_verifies_the_chain_and_names_a_rewritten_event(tmp_path: Path) -> None:
    db = str(tmp_path / "v.db")
    session = Session(db, "zhang")
    session.record([parse_command(find(f"V-{n}", on="2022-02-01")) for n in range(3)])
    app = LandLedgerApp(session, as_of=CUTOFF)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("4")
        await settle(app, pilot)
        await pilot.click("#verify")
        await settle(app, pilot)
        assert static_text(app, "#verify-verdict").startswith("核验通过：4 个事件")
        with sqlite3.connect(db) as conn:  # one stored fact rewritten behind the store's back
            state = conn.execute("SELECT state FROM stored_events WHERE rowid = 3").fetchone()[0]
            forged = state.replace(b'"area_m2":"1000', b'"area_m2":"9000')
            assert forged != state
            conn.execute("UPDATE stored_events SET state = ? WHERE rowid = 3", (forged,))
        await pilot.click("#verify")
        await settle(app, pilot)
        verdict = static_text(app, "#verify-verdict")
        assert verdict.startswith("核验未通过") and "V-1" in verdict
