"""The 台账 table widget (tui.ledger_table) in a headless app over a real SQLite store of 300
recorded cases: what a user sees and what the screen is told."""

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from helpers import find, record
from rich.cells import cell_len
from textual.app import App, ComposeResult
from textual.pilot import Pilot

from domain.campaign import load_config
from domain.errors import DomainError
from projections import ledger_query as lq
from projections.ledger_query import LedgerLine, LedgerPages, LedgerQuery
from projections.readmodel import ReadModel
from service.demo import demo_commands
from service.ledger import LandLedger
from tui.ledger_table import LedgerTable

TODAY = date(2022, 4, 15)
CASES = 300


class Host(App[None]):
    def __init__(self, source: LedgerPages, query: LedgerQuery) -> None:
        super().__init__()
        self.source, self.start = source, query
        self.opened: list[str] = []
        self.counted: list[int] = []
        self.sorts: list[LedgerQuery] = []

    def compose(self) -> ComposeResult:
        yield LedgerTable(self.source, self.start)

    def on_ledger_table_opened(self, message: LedgerTable.Opened) -> None:
        self.opened.append(message.ref)

    def on_ledger_table_counted(self, message: LedgerTable.Counted) -> None:
        self.counted.append(message.row_count)

    def on_ledger_table_sort_changed(self, message: LedgerTable.SortChanged) -> None:
        self.sorts.append(message.query)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """300 demo cases (and one whose party name looks like markup), their find_site commands."""
    path = str(tmp_path_factory.mktemp("table") / "ledger.db")
    app = LandLedger(path)
    commands = demo_commands(app.campaign().config, CASES, seed=7)
    record(app, *commands)
    odd = find("Z-[b]1", party_name="[b]王[/b]", project_name="厂房[red]x")
    record(app, odd)
    model = ReadModel(app)
    model.catch_up()
    model.close()
    app.close()
    yield path, [c for c in commands if c["cmd"] == "find_site"] + [odd]


def official_order(found: list[dict[str, Any]]) -> list[str]:
    """The refs in the campaign's township order (as the data file lists them), then by ref."""
    townships = load_config().townships
    return [
        c["ref"] for c in sorted(found, key=lambda c: (townships.index(c["township"]), c["ref"]))
    ]


def screen(table: LedgerTable) -> list[str]:
    """The table's lines as drawn."""
    return [table.render_line(y).text for y in range(table.scrollable_content_region.height)]


def run(
    path: str,
    test: Callable[[Host, LedgerTable, Pilot[None]], Awaitable[None]],
    query: LedgerQuery | None = None,
    size: tuple[int, int] = (120, 20),
) -> None:
    async def main() -> None:
        app = LandLedger(path)
        model = ReadModel(app)
        host = Host(LedgerPages(model), query or LedgerQuery(today=TODAY))
        try:
            async with host.run_test(size=size) as pilot:
                await settle(host, pilot)
                await test(host, host.query_one(LedgerTable), pilot)
        finally:
            model.close()
            app.close()

    asyncio.run(main())


async def settle(host: Host, pilot: Pilot[None]) -> None:
    """Let the workers read and the table draw what they read."""
    for _ in range(3):
        await host.workers.wait_for_complete()
        await pilot.pause()


def test_the_first_paint_shows_the_first_rows(store: tuple[str, list[dict[str, Any]]]) -> None:
    path, found = store
    expected = official_order(found)

    async def check(host: Host, table: LedgerTable, pilot: Pilot[None]) -> None:
        assert table.row_count == CASES + 1
        assert host.counted == [CASES + 1]
        lines = screen(table)
        assert lines[0].startswith("编号")
        assert "乡镇" in lines[0] and "整改期限" in lines[0]
        shown = [line.split()[0] for line in lines[1:]]
        assert shown == expected[: len(shown)]
        assert len(shown) == 19
        # Chinese text is two cells wide and every line fills the width exactly.
        assert {cell_len(line) for line in lines} == {table.scrollable_content_region.width}

    run(path, check)


def test_end_shows_the_last_row_and_enter_opens_it(
    store: tuple[str, list[dict[str, Any]]],
) -> None:
    path, found = store
    expected = official_order(found)

    async def check(host: Host, table: LedgerTable, pilot: Pilot[None]) -> None:
        await pilot.press("end")
        await settle(host, pilot)
        assert table.cursor_row == CASES
        assert screen(table)[-1].split()[0] == expected[-1]
        await pilot.press("enter")
        await pilot.pause()
        assert host.opened == [expected[-1]]
        await pilot.press("home", "down", "down", "enter")
        await pilot.pause()
        assert host.opened[-1] == expected[2]
        await pilot.press("pagedown")
        await settle(host, pilot)
        assert table.cursor_row == 2 + 19
        assert table.cursor_line is not None
        assert table.cursor_line.ref == expected[21]

    run(path, check)


def test_a_query_narrows_the_rows(store: tuple[str, list[dict[str, Any]]]) -> None:
    path, found = store
    mine = sorted(c["ref"] for c in found if c["township"] == "苏店镇")

    async def check(host: Host, table: LedgerTable, pilot: Pilot[None]) -> None:
        table.set_query(LedgerQuery(township="苏店镇", today=TODAY))
        await settle(host, pilot)
        assert table.row_count == len(mine)
        assert host.counted[-1] == len(mine)
        rows = screen(table)[1:]
        assert [r.split()[0] for r in rows if r.strip()] == mine[: len(rows)]
        assert all(r.split()[1] == "苏店镇" for r in rows if r.strip())
        table.set_query(LedgerQuery(text="[b]", today=TODAY))  # markup is searched as text
        await settle(host, pilot)
        assert table.row_count == 1
        assert "[b]王[/b]" in screen(table)[1]
        assert "厂房[red]x" in screen(table)[1]

    run(path, check)


def test_a_header_click_sorts_and_a_row_click_selects(
    store: tuple[str, list[dict[str, Any]]],
) -> None:
    path, found = store
    refs = sorted(c["ref"] for c in found)

    async def check(host: Host, table: LedgerTable, pilot: Pilot[None]) -> None:
        await pilot.click(LedgerTable, offset=(1, 0))  # 编号
        await settle(host, pilot)
        assert table.ledger_query.sort == "ref"
        assert host.sorts[-1] == table.ledger_query
        assert screen(table)[1].split()[0] == refs[0]
        assert "编号升" in screen(table)[0]
        await pilot.click(LedgerTable, offset=(1, 0))
        await settle(host, pilot)
        assert table.ledger_query.descending
        assert screen(table)[1].split()[0] == refs[-1]
        await pilot.click(LedgerTable, offset=(30, 0))  # 村: not sortable, nothing changes
        await settle(host, pilot)
        assert table.ledger_query.sort == "ref"
        await pilot.click(LedgerTable, offset=(5, 4))
        await pilot.pause()
        assert table.cursor_row == 3
        assert table.cursor_line is not None
        assert table.cursor_line.ref == refs[-4]
        await pilot.click(LedgerTable, offset=(5, 4), times=2)
        await pilot.pause()
        assert host.opened[-1] == refs[-4]

    run(path, check)


def test_at_80_columns_the_ref_stays_while_the_rest_scrolls(
    store: tuple[str, list[dict[str, Any]]],
) -> None:
    path, found = store
    first = official_order(found)[0]

    async def check(host: Host, table: LedgerTable, pilot: Pilot[None]) -> None:
        width = table.scrollable_content_region.width
        assert width <= 80
        assert "整改期限" not in screen(table)[0]
        await pilot.press("right")  # a column at a time
        await settle(host, pilot)
        assert screen(table)[0].split()[:2] == ["编号", "村"]
        await pilot.press(*["right"] * 10)
        await settle(host, pilot)
        lines = screen(table)
        assert "整改期限" in lines[0]
        assert lines[0].startswith("编号")
        assert lines[1].startswith(first)
        assert {cell_len(line) for line in lines} == {width}
        await pilot.press(*["left"] * 10)
        await settle(host, pilot)
        assert screen(table)[0].split()[:2] == ["编号", "乡镇升"]

    run(path, check, size=(80, 24))


def test_refresh_keeps_the_cursor_and_shows_new_cases(
    store: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    path, _ = store
    copy = tmp_path / "copy.db"
    copy.write_bytes(Path(path).read_bytes())

    async def check(host: Host, table: LedgerTable, pilot: Pilot[None]) -> None:
        await pilot.press("down", "down", "down")
        before = table.cursor_line
        writer = LandLedger(str(copy))
        record(writer, find("A-0000", township="韩店街道"))
        model = ReadModel(writer)
        model.catch_up()
        model.close()
        writer.close()
        table.refresh_data()
        await settle(host, pilot)
        assert table.row_count == CASES + 2
        assert table.cursor_row == 3
        assert before is not None and table.cursor_line is not None
        assert screen(table)[1].split()[0] == "A-0000"  # first in 韩店街道 now

    run(str(copy), check)


def test_no_rows_says_so(store: tuple[str, list[dict[str, Any]]]) -> None:
    async def check(host: Host, table: LedgerTable, pilot: Pilot[None]) -> None:
        table.set_query(LedgerQuery(text="没有这个人", today=TODAY))
        await settle(host, pilot)
        assert table.row_count == 0
        assert host.counted[-1] == 0
        assert screen(table)[1].strip() == "没有符合条件的案件"
        await pilot.press("enter", "down", "end")
        assert host.opened == []

    run(store[0], check)


class Slow:
    """A source that takes its time, then fails when told to."""

    def __init__(self, rows: list[LedgerLine]) -> None:
        self.rows = rows
        self.release = threading.Event()
        self.fail = False

    def count(self, query: LedgerQuery) -> int:
        self.release.wait(5)
        if self.fail:
            raise DomainError("数据库不可用")
        return len(self.rows)

    def page(self, query: LedgerQuery, offset: int, limit: int) -> list[LedgerLine]:
        return self.rows[offset : offset + limit]

    def interrupt(self) -> None:
        self.release.set()


def test_reading_never_blocks_the_screen_and_a_failure_is_a_notice(
    store: tuple[str, list[dict[str, Any]]],
) -> None:
    app = LandLedger(store[0])
    model = ReadModel(app)
    rows = lq.page(model, LedgerQuery(today=TODAY), 0, 30)
    model.close()
    app.close()
    source = Slow(rows)

    class SlowHost(App[None]):
        def compose(self) -> ComposeResult:
            yield LedgerTable(source, LedgerQuery(today=TODAY))

    async def main() -> None:
        host = SlowHost()
        async with host.run_test(size=(120, 20)) as pilot:
            await pilot.pause()
            table = host.query_one(LedgerTable)
            # The count is still running in its thread: the screen is drawn and takes keys.
            assert not table.loaded
            assert screen(table)[0].startswith("编号")
            await pilot.press("down")
            source.release.set()
            await host.workers.wait_for_complete()
            await pilot.pause()
            assert table.row_count == 30
            assert screen(table)[1].split()[0] == rows[0].ref
            source.fail = True
            table.refresh_data()
            await host.workers.wait_for_complete()
            await pilot.pause()
            assert table.row_count == 30  # what it showed stays
            messages = [n.message for n in host._notifications]
            assert [m for m in messages if "台账读取失败" in m] == ["台账读取失败：数据库不可用"]
            table.refresh_data()  # the live refresh tries again: no second notice
            await host.workers.wait_for_complete()
            await pilot.pause()
            messages = [n.message for n in host._notifications]
            assert len([m for m in messages if "台账读取失败" in m]) == 1
            source.fail = False
            table.refresh_data()
            await host.workers.wait_for_complete()
            await pilot.pause()
            assert table.loaded and table.row_count == 30

    asyncio.run(main())


class Endless(Slow):
    """A source whose first count is a statement that never ends on a real SQLite
    connection, until it is interrupted."""

    def __init__(self, rows: list[LedgerLine], path: str) -> None:
        super().__init__(rows)
        self.conn = sqlite3.connect(path, check_same_thread=False)
        self.endless = True
        self.interrupted = 0
        self.started = threading.Event()
        self.given_up = False  # the test failed: end the statement all the same
        # Whether or not the statement had begun when interrupted, it stops.
        self.conn.set_progress_handler(lambda: self.interrupted or self.given_up, 1000)

    def count(self, query: LedgerQuery) -> int:
        if self.endless:
            self.endless = False
            self.started.set()
            self.conn.execute(
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
                "SELECT count(*) FROM n"
            ).fetchall()
        return len(self.rows)

    def interrupt(self) -> None:
        self.interrupted += 1
        self.conn.interrupt()


def test_a_new_query_stops_the_reading_of_the_one_it_replaces(
    store: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """Filtering again while a slow count runs: the old statement is interrupted (it would
    otherwise hold the connection for good), the new rows come, and no failure is shown."""
    app = LandLedger(store[0])
    model = ReadModel(app)
    rows = lq.page(model, LedgerQuery(today=TODAY), 0, 30)
    model.close()
    app.close()
    source = Endless(rows, str(tmp_path / "scratch.db"))

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield LedgerTable(source, LedgerQuery(today=TODAY))

    async def main() -> None:
        host = Host()
        async with host.run_test(size=(120, 20)) as pilot:
            table = host.query_one(LedgerTable)
            await asyncio.to_thread(source.started.wait, 60)
            assert not table.loaded
            table.set_query(LedgerQuery(today=TODAY, text="SD"))
            try:
                await asyncio.wait_for(host.workers.wait_for_complete(), 60)
            finally:
                source.given_up = True
            await pilot.pause()
            assert source.interrupted == 1
            assert table.row_count == 30
            assert not [n for n in host._notifications if "台账读取失败" in n.message]

    asyncio.run(main())
