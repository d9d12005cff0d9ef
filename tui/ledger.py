"""`2` 台账: every case in a table that reads only the rows in view; search, filters, sort."""

from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select

from domain.case import STATES
from domain.values import VIOLATION_TYPES
from projections.ledger_query import LedgerQuery
from service.session import Session
from tui.ledger_table import LedgerTable

ALERT_FILTERS = (
    ("整改逾期", "overdue"),
    ("达标未移送公安", "crime"),
    ("立案超期未处罚", "decision"),
    ("挂牌督办", "supervised"),
)


class LedgerPane(Vertical):
    """The search box, the filters, `共 N 件` and the table."""

    HELP = (
        "台账：全部案件，只读取屏幕上的行。按 / 搜索编号、项目名称、当事人、村（空格分隔多个词），"
        "回车应用并跳到第一行，Esc 清除；下拉框按乡镇、责任单位、状态、违法类型、预警筛选；"
        "点击列标题排序（再点一次倒序，第三次恢复）；在行上回车打开案件。"
        "以过去的日期打开时，台账仍是最新记录（预警按该日期判断）；某日的台账在 4 审计 中查看。"
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "search", "搜索", id="ledger.search"),
    ]

    def __init__(self, session: Session, cutoff: Any, fixed: bool = False) -> None:
        super().__init__(id="ledger-pane")
        self.session = session
        self.cutoff = cutoff
        # Opened at a past date, the table still holds every case as last recorded (alerts are
        # judged at that date): the count says so; the ledger as it was is 4 审计's.
        self.latest_note = "（最新记录）" if fixed else ""

    def compose(self) -> ComposeResult:
        config = self.session.ledger.campaign().config
        with Horizontal(id="ledger-top"):
            yield Input(placeholder="/ 搜索：编号、项目名称、当事人、村", id="ledger-search")
            yield Label("", id="ledger-count")
        with Horizontal(id="ledger-filters"):
            yield self._choice("township", "乡镇（街道）", config.townships)
            yield self._choice("unit", "责任单位", config.units)
            yield self._choice("state", "状态", STATES)
            yield self._choice("violation_type", "违法类型", VIOLATION_TYPES)
            yield Select(
                [(Text(name), kind) for name, kind in ALERT_FILTERS],
                prompt="预警：全部",
                id="filter-alert",
                compact=True,
            )
        yield LedgerTable(
            self.session.ledger_pages(), LedgerQuery(today=self.cutoff), id="ledger-table"
        )

    @staticmethod
    def _choice(key: str, name: str, values: tuple[str, ...]) -> Select[str]:
        return Select(
            [(Text(v), v) for v in values], prompt=f"{name}：全部", id=f"filter-{key}", compact=True
        )

    def query_now(self) -> LedgerQuery:
        """The query the search box and the filters say, keeping the table's sort."""
        table = self.query_one(LedgerTable)

        def chosen(key: str) -> str | None:
            value = self.query_one(f"#filter-{key}", Select).value
            return value if isinstance(value, str) else None

        return LedgerQuery(
            text=self.query_one("#ledger-search", Input).value,
            township=chosen("township"),
            unit=chosen("unit"),
            state=chosen("state"),
            violation_type=chosen("violation_type"),
            alert=chosen("alert"),
            sort=table.ledger_query.sort,
            descending=table.ledger_query.descending,
            today=self.cutoff,
        )

    def apply(self) -> None:
        self.query_one(LedgerTable).set_query(self.query_now())

    def action_search(self) -> None:
        self.query_one("#ledger-search", Input).focus()

    @on(Input.Submitted, "#ledger-search")
    def _searched(self) -> None:
        self.apply()
        self.query_one(LedgerTable).focus()

    def on_key(self, event: Any) -> None:
        search = self.query_one("#ledger-search", Input)
        if event.key == "escape" and search.has_focus:
            event.stop()
            search.value = ""
            self.apply()
            self.query_one(LedgerTable).focus()

    @on(Select.Changed)
    def _filtered(self) -> None:
        self.apply()

    @on(LedgerTable.Counted)
    def _counted(self, event: LedgerTable.Counted) -> None:
        count = f"共 {event.row_count} 件{self.latest_note}"
        self.query_one("#ledger-count", Label).update(Text(count))

    @on(LedgerTable.Opened)
    def _opened(self, event: LedgerTable.Opened) -> None:
        open_case = getattr(self.app, "open_case", None)
        if open_case is not None:
            open_case(event.ref)

    def refresh_data(self) -> None:
        self.query_one(LedgerTable).refresh_data()

    def palette_commands(self) -> list[tuple[str, str, Any]]:
        return [
            ("台账：搜索", "搜索编号、项目名称、当事人、村", self._search_from_palette),
            ("台账：清除筛选", "清除搜索和全部筛选", self.clear_filters),
        ]

    def _search_from_palette(self) -> None:
        show_tab = getattr(self.screen, "show_tab", None)
        if show_tab is not None:
            show_tab("ledger")
        self.action_search()

    def clear_filters(self) -> None:
        self.query_one("#ledger-search", Input).value = ""
        for select in self.query(Select):
            select.clear()
        self.apply()
