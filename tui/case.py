"""案件: one case's facts, state, alerts and timeline, pushed over the screen it was opened from;
`a` opens 办理 (the commands valid in its state, each a form)."""

from datetime import date
from decimal import Decimal
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from domain.commands import Command
from domain.values import label, m2_to_mu
from projections.ledger import LedgerRow
from service.session import HistoryEntry, Session, shown_value
from tui.audit import HISTORY_COLUMNS, history_cells
from tui.failures import ToldFailures
from tui.forms import command_title


def _area(value: Decimal) -> str:
    return f"{m2_to_mu(value)}亩（{value:.2f}㎡）" if value else ""


def _money(value: Decimal) -> str:
    return f"{value:.2f}元" if value else ""


def _day(value: date | None) -> str:
    return value.isoformat() if value else ""


def case_groups(row: LedgerRow) -> list[tuple[str, list[tuple[str, str]]]]:
    """The case's facts in DESIGN's groups, as (label, text) pairs; blanks left out."""
    site = row.case.site
    basic = [("编号", row.case.ref), ("状态", row.state), ("发现日期", _day(row.case.found_on))]
    for name in (
        "source",
        "township",
        "village",
        "location",
        "project_name",
        "party_name",
        "party_kind",
        "party_id_no",
        "party_phone",
        "violation_types",
        "land_use",
        "unit",
        "major_hazard",
        "hazard_note",
        "note",
    ):
        basic.append((label(name), shown_value(name, getattr(site, name), unmasked=False)))
    if site.lon is not None and site.lat is not None:
        basic.append(("坐标", f"{site.lon}, {site.lat}"))
    areas = [
        (label(name), _area(getattr(site, name)))
        for name in ("area_m2", "cultivated_m2", "basic_farmland_m2", "eco_redline_m2")
    ]
    areas.append((label("building_area_m2"), f"{site.building_area_m2:.2f}㎡"))
    enforcement = [
        ("制止日期", _day(row.stopped_on)),
        (label("order_no"), row.order_no),
        (label("outcome"), row.stop_outcome),
        ("立案日期", _day(row.filed_on)),
        (label("case_no"), row.case_no),
        (label("handlers"), "、".join(row.handlers)),
        ("处罚决定日期", _day(row.decided_on)),
        (label("decision_no"), row.decision_no),
        (label("fine_yuan"), _money(row.fine_yuan)),
        (label("confiscated_income_yuan"), _money(row.confiscated_income_yuan)),
        (label("demolish_m2"), _area(row.demolish_m2)),
        (label("confiscate_building_m2"), _area(row.confiscate_building_m2)),
        ("排除日期", _day(row.dismissed_on)),
        ("排除原因", row.dismiss_reason),
    ]
    referrals = [
        (f"移送{r.agency}", f"{_day(r.on)} {r.doc_no} {r.persons}人".strip()) for r in row.referrals
    ]
    rectification = [
        (label("measures"), "、".join(row.measures)),
        (label("due_on"), _day(row.due_on)),
        (label("demolished_m2"), _area(row.demolished_m2)),
        (label("restored_m2"), _area(row.restored_m2)),
        (label("fine_paid_yuan"), _money(row.fine_paid_yuan)),
        ("补办手续（宗）", str(row.permits) if row.permits else ""),
        ("整改到位日期", _day(row.rectified_on)),
        ("销号日期", _day(row.closed_on)),
        ("重开日期", _day(row.reopened_on)),
        ("标记", "、".join(row.flags)),
    ]
    groups = [
        ("基本情况", basic),
        ("面积", areas),
        ("查处", enforcement),
        ("移送", referrals),
        ("整改", rectification),
    ]
    return [(name, [(k, v) for k, v in pairs if v]) for name, pairs in groups]


def group_table(title: str, pairs: list[tuple[str, str]]) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    grid.title = title
    grid.title_style = "bold"
    grid.title_justify = "left"
    for key, value in pairs or [("", "（无）")]:
        grid.add_row(Text(key), Text(value))
    return grid


class CaseScreen(ToldFailures, Screen[None]):
    """The case; `Esc` goes back to where it was opened from."""

    HELP = (
        "案件：按 基本情况、面积、查处、移送、整改 分组显示案件信息，下方为全部事件的时间线"
        "（业务日期、记录时间、操作人、事件、更正原因）。按 a 办理：列出当前状态下可做的事项。"
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "返回", id="case.back"),
        Binding("a", "act", "办理", id="case.act"),
    ]

    def __init__(self, session: Session, ref: str, cutoff: date) -> None:
        super().__init__()
        self.session = session
        self.ref = ref
        self.cutoff = cutoff
        self.row: LedgerRow | None = None

    def compose(self) -> ComposeResult:
        app: Any = self.app
        yield app.header_widget()
        yield Static(Text(f"案件 {self.ref}", style="bold"), id="case-title")
        yield Static(id="case-alerts")
        with VerticalScroll(id="case-body"):
            with Horizontal(id="case-groups"):
                yield Static(id="case-left")
                yield Static(id="case-right")
            yield Static("时间线", classes="caption")
            table: DataTable[Any] = DataTable(id="timeline", cursor_type="row")
            yield table
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#timeline", DataTable).add_columns(*HISTORY_COLUMNS)
        self.refresh_data()

    def refresh_data(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="case", exit_on_error=False)
    def _load(self) -> None:
        row = self.session.case_row(self.ref)
        history = self.session.history(self.ref)
        alerts = self.session.case_alerts(row, self.cutoff)
        self.app.call_from_thread(self._show, row, history, alerts)

    def _show(self, row: LedgerRow, history: list[HistoryEntry], alerts: tuple[str, ...]) -> None:
        self.row = row
        groups = case_groups(row)
        left = Table.grid(padding=(0, 0))
        right = Table.grid(padding=(0, 0))
        for index, (title, pairs) in enumerate(groups):
            (left if index < 2 else right).add_row(group_table(title, pairs))
        self.query_one("#case-left", Static).update(left)
        self.query_one("#case-right", Static).update(right)
        heading = Text.assemble((f"案件 {row.case.ref}", "bold"), "  ", (row.state, "bold cyan"))
        self.query_one("#case-title", Static).update(heading)
        warning = Text("预警：" + "；".join(alerts), style="bold red") if alerts else Text("无预警")
        self.query_one("#case-alerts", Static).update(warning)
        table = self.query_one("#timeline", DataTable)
        table.clear()
        for entry in history:
            table.add_row(*history_cells(entry))

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_act(self) -> None:
        """办理: the commands valid in the case's state, each a form; saved as `record` saves."""
        if self.row is None:
            return
        from tui.forms import open_actions

        open_actions(
            self.app,
            self.row.case,
            campaign=self.session.ledger.campaign().config,
            today=self.cutoff,
            save=self._save,
            saved=self._saved,
        )

    def _save(self, command: Command) -> None:
        """Called by the form from its worker thread: the same call as `landledger record`."""
        self.session.record([command])

    def _saved(self, command: Command) -> None:
        self.app.notify(f"已保存：{command_title(type(command))}", title=f"案件 {self.ref}")
        refresh_all = getattr(self.app, "refresh_all", None)
        if refresh_all is not None:
            refresh_all()

    def palette_commands(self) -> list[tuple[str, str, Any]]:
        return [
            ("办理", "当前状态下可做的事项", self.action_act),
            ("返回", "回到打开案件前的屏幕", self.action_back),
        ]
