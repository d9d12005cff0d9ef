"""The 台账 table: 200,000 cases without a pause.

A Line-API `ScrollView` (as Toolong's log view): `render_line` draws only the lines in view,
from a cache of pages of `PAGE` rows; a page not yet cached is drawn blank and read from the
data source in a worker thread, which posts it back. Counting and reading never run on the
event loop. A new query or a refresh keeps showing the rows it has until the new ones have
arrived, then swaps them in at once (no flicker on the live refresh).

The header line stays at the top and the 编号 column at the left while the rest scrolls
sideways (at 80 columns). Chinese text is two cells wide: every cell is a Rich `Text` (user
data is never markup) cut to its column's cells with `Text.truncate`, and no ambiguous-width
character (… ▲ ·) is drawn.
"""

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import ClassVar, Protocol

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import work
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from projections.ledger_query import LedgerLine, LedgerQuery

PAGE = 100  # rows a fetch reads
CACHED_PAGES = 40  # pages kept (4,000 rows): scrolling back is instant, memory stays flat
SQUARE_METRES_PER_MU = Decimal("666.67")  # 1 亩 = 10000/15 ㎡, as the statistics round it


class LedgerSource(Protocol):
    """Where the table reads rows: called from worker threads, one call at a time."""

    def count(self, query: LedgerQuery) -> int: ...

    def page(self, query: LedgerQuery, offset: int, limit: int) -> Sequence[LedgerLine]: ...

    def interrupt(self) -> None:
        """Stop what another thread is reading (from the event loop's thread)."""


def mu(area_m2: Decimal) -> str:
    """㎡ → 亩 with two places, rounded half-up (as exports show it)."""
    return str((area_m2 / SQUARE_METRES_PER_MU).quantize(Decimal("0.01"), ROUND_HALF_UP))


@dataclass(frozen=True)
class Column:
    label: str
    short: str  # the label when it must share its cells with the sort mark
    width: int  # cells
    sort: str | None  # the LedgerQuery sort it cycles (None: not sortable)
    cell: Callable[[LedgerLine], str]
    right: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("编号", "编号", 14, "ref", lambda r: r.ref),
    Column("乡镇（街道）", "乡镇", 12, "township", lambda r: r.township),
    Column("村", "村", 6, None, lambda r: r.village),
    Column("项目名称", "项目名称", 16, None, lambda r: r.project_name),
    Column("当事人", "当事人", 12, None, lambda r: r.party_name),
    Column("违法类型", "违法类型", 12, None, lambda r: "、".join(r.violation_types)),
    Column("占地（亩）", "占地", 10, "area", lambda r: mu(r.area_m2), right=True),
    Column("状态", "状态", 6, "state", lambda r: r.state),
    Column("发现日期", "发现", 10, "found_on", lambda r: r.found_on.isoformat()),
    Column("整改期限", "期限", 10, "due_on", lambda r: r.due_on.isoformat() if r.due_on else ""),
)
GAP = 1  # cells between columns
FROZEN = COLUMNS[0].width + GAP  # 编号 stays in view when the rest scrolls sideways
TOTAL_WIDTH = sum(c.width for c in COLUMNS) + GAP * (len(COLUMNS) - 1)
# The horizontal scroll positions that show a column from its first cell (left and right
# move by a column, not by a cell).
STOPS = tuple(sum(c.width + GAP for c in COLUMNS[1:i]) for i in range(1, len(COLUMNS)))
DUE = len(COLUMNS) - 1
SORT_MARKS = ("升", "降")  # two cells each, never ambiguous


def column_at(x: int) -> int | None:
    """The column under a cell of the full row (None: a gap or past the end)."""
    left = 0
    for i, column in enumerate(COLUMNS):
        if left <= x < left + column.width:
            return i
        left += column.width + GAP
    return None


def fit(text: Text, width: int, right: bool = False) -> Text:
    """The text in exactly `width` cells: cut (never with an ellipsis), padded, aligned."""
    text.truncate(width, overflow="crop")
    pad = width - text.cell_len
    if pad > 0:
        if right:
            text = Text(" " * pad) + text
        else:
            text.pad_right(pad)
    return text


class LedgerTable(ScrollView, can_focus=True):
    """The ledger, filtered and sorted by a `LedgerQuery`, read through a `LedgerSource`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "上一行", show=False, id="ledger.up"),
        Binding("down", "cursor_down", "下一行", show=False, id="ledger.down"),
        Binding("pageup", "page_up", "上一页", show=False, id="ledger.page_up"),
        Binding("pagedown", "page_down", "下一页", show=False, id="ledger.page_down"),
        Binding("home", "first", "第一行", show=False, id="ledger.first"),
        Binding("end", "last", "最后一行", show=False, id="ledger.last"),
        Binding("left", "column_left", "左移一列", show=False, id="ledger.left"),
        Binding("right", "column_right", "右移一列", show=False, id="ledger.right"),
        Binding("enter", "open", "打开案件", id="ledger.open"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "ledger-table--header",
        "ledger-table--sorted",
        "ledger-table--cursor",
        "ledger-table--overdue",
    }

    DEFAULT_CSS = """
    LedgerTable {
        height: 1fr;
        background: $surface;
        color: $foreground;
        & > .ledger-table--header { text-style: bold; background: $panel; color: $foreground; }
        & > .ledger-table--sorted { text-style: bold underline; }
        & > .ledger-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
        }
        &:focus > .ledger-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .ledger-table--overdue { color: $error; }
    }
    """

    cursor_row: reactive[int] = reactive(0, always_update=True, init=False)

    class Opened(Message):
        """Enter (or a double click) on a row: open this case."""

        def __init__(self, table: "LedgerTable", ref: str) -> None:
            super().__init__()
            self.table = table
            self.ref = ref

        @property
        def control(self) -> "LedgerTable":
            return self.table

    class Counted(Message):
        """The rows were counted again (a new query or a refresh): for `共 N 件`."""

        def __init__(self, table: "LedgerTable", row_count: int) -> None:
            super().__init__()
            self.table = table
            self.row_count = row_count

        @property
        def control(self) -> "LedgerTable":
            return self.table

    class SortChanged(Message):
        """A header click changed the order; `query` is the table's query now."""

        def __init__(self, table: "LedgerTable", query: LedgerQuery) -> None:
            super().__init__()
            self.table = table
            self.query = query

        @property
        def control(self) -> "LedgerTable":
            return self.table

    class Failed(Message):
        """Reading failed; the table keeps what it showed."""

        def __init__(self, table: "LedgerTable", error: Exception) -> None:
            super().__init__()
            self.table = table
            self.error = error

    # Posted by the workers to the table itself.
    class _Reloaded(Message):
        def __init__(
            self, generation: int, row_count: int, pages: dict[int, list[LedgerLine]], home: bool
        ) -> None:
            super().__init__()
            self.generation, self.row_count, self.pages, self.home = (
                generation,
                row_count,
                pages,
                home,
            )

    class _PageRead(Message):
        def __init__(self, generation: int, page: int, rows: list[LedgerLine] | None) -> None:
            super().__init__()
            self.generation, self.page, self.rows = generation, page, rows

    def __init__(
        self,
        source: LedgerSource,
        query: LedgerQuery | None = None,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.source = source
        self._query = query or LedgerQuery()
        self._row_count = 0
        self._counted = False  # the first count has arrived
        self._generation = 0  # bumped by every new query or refresh
        self._shown = 0  # the generation whose rows are cached and drawn
        self._pages: LRUCache[int, list[LedgerLine]] = LRUCache(CACHED_PAGES)
        self._pending: set[int] = set()
        self._strips: LRUCache[tuple[int, int], Strip] = LRUCache(1000)
        self._lock = threading.Lock()  # one source call at a time
        # The generation a worker is reading for, guarded by its own lock: a newer query
        # interrupts an older one's reading, never its own.
        self._reading: int | None = None
        self._reading_lock = threading.Lock()
        self._broken = False  # reading failed: no more pages asked for until a reload works
        self.virtual_size = Size(TOTAL_WIDTH, 1)

    # The public surface -------------------------------------------------------------

    @property
    def ledger_query(self) -> LedgerQuery:
        """The query shown (after a header click, with its new sort)."""
        return self._query

    @property
    def row_count(self) -> int:
        """The rows the query finds (0 until the first count arrives)."""
        return self._row_count

    @property
    def loaded(self) -> bool:
        """Whether the current query's count has arrived."""
        return self._counted and self._shown == self._generation

    @property
    def cursor_line(self) -> LedgerLine | None:
        """The row under the cursor, if it has been read."""
        return self.row(self.cursor_row)

    def row(self, index: int) -> LedgerLine | None:
        rows = self._pages.get(index // PAGE)
        if rows is None or not 0 <= index % PAGE < len(rows):
            return None
        return rows[index % PAGE]

    def set_query(self, query: LedgerQuery) -> None:
        """Show another query's rows: counted again, from the first row."""
        self._query = query
        self._reload(home=True)

    def refresh_data(self) -> None:
        """Read the rows again (something was recorded), keeping the cursor where it is."""
        self._reload(home=False)

    # Reading, off the event loop -------------------------------------------------------

    def on_mount(self) -> None:
        self._reload(home=True)

    def _reload(self, *, home: bool) -> None:
        self._generation += 1
        self._pending.clear()
        with self._reading_lock:
            if self._reading is not None:  # an older query's count or page: not wanted now
                self.source.interrupt()
        first = 0 if home else int(self.scroll_y)
        rows = max(self.size.height, 50)
        pages = sorted(
            {first // PAGE, (first + rows) // PAGE, 0 if home else self.cursor_row // PAGE}
        )
        self._count(self._generation, self._query, pages, home)

    @contextmanager
    def _reading_for(self, generation: int) -> Iterator[bool]:
        """Holds the source for one generation; yields False when a newer one came first."""
        with self._lock:
            with self._reading_lock:
                if generation != self._generation:
                    yield False
                    return
                self._reading = generation
            try:
                yield True
            finally:
                with self._reading_lock:
                    self._reading = None

    @work(thread=True, group="ledger-count", exit_on_error=False)
    def _count(self, generation: int, query: LedgerQuery, pages: list[int], home: bool) -> None:
        try:
            with self._reading_for(generation) as current:
                if not current:
                    return
                total = self.source.count(query)
                read = {
                    p: list(self.source.page(query, p * PAGE, PAGE))
                    for p in pages
                    if p * PAGE < total
                }
        except Exception as error:
            if generation == self._generation:  # else: interrupted for a newer query
                self.post_message(self.Failed(self, error))
            return
        self.post_message(self._Reloaded(generation, total, read, home))

    @work(thread=True, group="ledger-page", exit_on_error=False)
    def _read_page(self, generation: int, query: LedgerQuery, page: int) -> None:
        try:
            with self._reading_for(generation) as current:
                if not current:
                    return
                rows = None
                if self._near(page):  # not scrolled past while it waited for the lock
                    rows = list(self.source.page(query, page * PAGE, PAGE))
        except Exception as error:
            if generation == self._generation:
                self.post_message(self.Failed(self, error))
            return
        self.post_message(self._PageRead(generation, page, rows))

    def _near(self, page: int) -> bool:
        """Whether a page is in view or next to it."""
        top = int(self.scroll_y)
        first, last = top // PAGE, (top + self._rows_in_view) // PAGE
        return first - 1 <= page <= last + 1

    def _on_ledger_table__reloaded(self, message: _Reloaded) -> None:
        message.stop()
        if message.generation != self._generation:
            return
        self._shown = message.generation
        self._counted = True
        self._broken = False
        self._row_count = message.row_count
        self._pages.clear()
        self._strips.clear()
        self._pending.clear()
        for page, rows in message.pages.items():
            self._pages[page] = rows
        self.virtual_size = Size(TOTAL_WIDTH, self._row_count + 1)  # + the header line
        if message.home:
            self.scroll_to(y=0, animate=False, immediate=True)
            self.cursor_row = 0
        else:
            self.cursor_row = max(0, min(self.cursor_row, self._row_count - 1))
        self.refresh()
        self.post_message(self.Counted(self, self._row_count))

    def _on_ledger_table__page_read(self, message: _PageRead) -> None:
        message.stop()
        if message.generation != self._shown or message.generation != self._generation:
            return
        self._pending.discard(message.page)
        if message.rows is None:  # skipped: scrolled away; asked for again if it is needed
            if self._near(message.page):
                self.refresh()
            return
        self._pages[message.page] = message.rows
        first = message.page * PAGE
        top = int(self.scroll_y)
        if first <= top + self._rows_in_view and first + PAGE > top:
            self.refresh()

    def on_ledger_table_failed(self, message: Failed) -> None:
        self._pending.clear()
        if not self._broken:  # once, not at every repaint or refresh while it lasts
            self._broken = True
            self.notify(f"台账读取失败：{message.error}", title="台账", severity="error")

    def _want(self, page: int) -> None:
        if page in self._pending or self._shown != self._generation or self._broken:
            return  # asked for already, or a new query's rows are on their way
        self._pending.add(page)
        self._read_page(self._generation, self._query, page)

    # Drawing -----------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            return self._crop(self._header(), width, base)
        index = int(self.scroll_y) + y - 1
        if index >= self._row_count:
            if index == 0 and self.loaded:
                return self._crop(self._empty(), width, base)
            return Strip.blank(width, base)
        line = self.row(index)
        if line is None:
            self._want(index // PAGE)
            return Strip.blank(width, base)
        strip = self._strips.get((self._shown, index))
        if strip is None:
            strip = self._strips[(self._shown, index)] = self._row_strip(line)
        if index == self.cursor_row:
            strip = strip.apply_style(self.get_component_rich_style("ledger-table--cursor"))
        return self._crop(strip, width, base)

    def _crop(self, strip: Strip, width: int, base: Style) -> Strip:
        """The frozen 编号 column, then the rest from the horizontal scroll position."""
        x = int(self.scroll_x)
        if x:
            rest = max(0, width - FROZEN)
            strip = Strip.join([strip.crop(0, FROZEN), strip.crop(FROZEN + x, FROZEN + x + rest)])
        return strip.apply_style(base).adjust_cell_length(width, base)

    def _header(self) -> Strip:
        header = self.get_component_rich_style("ledger-table--header")
        sorted_style = self.get_component_rich_style("ledger-table--sorted")
        cells = []
        for i, column in enumerate(COLUMNS):
            if i:
                cells.append(Text(" " * GAP))
            if column.sort is not None and column.sort == self._query.sort:
                mark = SORT_MARKS[self._query.descending]
                label = column.label
                if cell_len(label) + cell_len(mark) > column.width:
                    label = column.short
                cells.append(fit(Text(label + mark, style=sorted_style), column.width))
            else:
                cells.append(fit(Text(column.label), column.width, column.right))
        line = Text.assemble(*cells, style=header)
        return Strip(line.render(self.app.console), TOTAL_WIDTH)

    def _empty(self) -> Strip:
        text = fit(Text("没有符合条件的案件", style="dim"), TOTAL_WIDTH)
        return Strip(text.render(self.app.console), TOTAL_WIDTH)

    def _row_strip(self, line: LedgerLine) -> Strip:
        cells = []
        for i, column in enumerate(COLUMNS):
            if i:
                cells.append(Text(" " * GAP))
            text = Text(column.cell(line))  # data as plain text: never markup
            if i == DUE and line.overdue:
                text.stylize(self.get_component_rich_style("ledger-table--overdue"))
            cells.append(fit(text, column.width, column.right))
        return Strip(Text.assemble(*cells).render(self.app.console), TOTAL_WIDTH)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    # The cursor ----------------------------------------------------------------------

    @property
    def _rows_in_view(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def watch_cursor_row(self, old: int, new: int) -> None:
        top = int(self.scroll_y)
        if new < top:
            self.scroll_to(y=new, animate=False, immediate=True)
        elif new >= top + self._rows_in_view:
            self.scroll_to(y=new - self._rows_in_view + 1, animate=False, immediate=True)
        self.refresh()

    def _move(self, row: int) -> None:
        if self._row_count:
            self.cursor_row = max(0, min(row, self._row_count - 1))

    def action_cursor_up(self) -> None:
        self._move(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self._move(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self._move(self.cursor_row - self._rows_in_view)

    def action_page_down(self) -> None:
        self._move(self.cursor_row + self._rows_in_view)

    def action_first(self) -> None:
        self._move(0)

    def action_last(self) -> None:
        self._move(self._row_count - 1)

    def action_column_left(self) -> None:
        x = int(self.scroll_x)
        self.scroll_to(x=max((s for s in STOPS if s < x), default=0), animate=False)

    def action_column_right(self) -> None:
        x = int(self.scroll_x)
        nxt = min((s for s in STOPS if s > x), default=x)
        self.scroll_to(x=min(nxt, int(self.max_scroll_x)), animate=False)

    def action_open(self) -> None:
        line = self.cursor_line
        if line is not None:
            self.post_message(self.Opened(self, line.ref))

    # The mouse ---------------------------------------------------------------------

    def on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        x = offset.x if offset.x < FROZEN else offset.x + int(self.scroll_x)
        if offset.y == 0:
            column = column_at(x)
            if column is not None and COLUMNS[column].sort is not None:
                sort = COLUMNS[column].sort
                assert sort is not None
                self._query = self._query.cycled(sort)
                self.post_message(self.SortChanged(self, self._query))
                self._reload(home=True)
            return
        index = int(self.scroll_y) + offset.y - 1
        if index < self._row_count:
            self.cursor_row = index
            if event.chain >= 2:
                self.action_open()
