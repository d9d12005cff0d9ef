"""`1` 总览 and `3` 预警: the campaign at a glance, and each alert as a list of cases."""

from datetime import date
from decimal import Decimal
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, OptionList, Sparkline, Static
from textual.widgets.option_list import Option

from projections.alerts import Alert
from projections.ledger import LedgerRow
from service.session import Session
from tui.failures import ToldFailures

KPIS = (
    ("found", "发现"),
    ("violations", "违法"),
    ("filed", "立案"),
    ("referred_police", "移送公安"),
    ("rectified", "整改到位"),
    ("closed_out", "销号"),
    ("rectification_rate", "整改率"),
)
PHASE_SHORT = {"contacts": "联络人", "survey": "台账", "report": "报告", "rectify": "整改"}
BAR_WIDTH = 24


def percent(rate: str) -> str:
    return f"{Decimal(rate) * 100:.1f}%"


def phase_lines(phases: list[tuple[str, str, date]], cutoff: date) -> Table:
    """The campaign's phases with their deadlines and the days left (or past) at the cutoff."""
    grid = Table.grid(padding=(0, 2))
    for _ in range(4):
        grid.add_column()
    for short, name, due in phases:
        days = (due - cutoff).days
        if days > 0:
            status = Text(f"还有 {days} 天", style="green")
        elif days == 0:
            status = Text("今天到期", style="bold yellow")
        else:
            status = Text(f"已过 {-days} 天", style="red")
        grid.add_row(Text(short, style="bold"), Text(due.isoformat()), status, Text(name))
    return grid


def kpi_line(total: dict[str, Any]) -> Table:
    grid = Table.grid(padding=(0, 3))
    for _ in KPIS:
        grid.add_column(justify="center")
    grid.add_row(*(Text(name, style="dim") for _, name in KPIS))
    cells = [
        Text(percent(total[key]) if key == "rectification_rate" else str(total[key]), style="bold")
        for key, _ in KPIS
    ]
    grid.add_row(*cells)
    return grid


def township_bars(groups: list[dict[str, Any]]) -> Table:
    """Violations by township as bars: the rectified part green, the rest yellow. Bars are
    coloured spaces, so no ambiguous-width character misaligns the columns."""
    most = max((g["violations"] for g in groups), default=0) or 1
    grid = Table.grid(padding=(0, 1))
    grid.add_column()
    for _ in range(5):
        grid.add_column(justify="right")
    grid.add_column()
    grid.add_row(
        *(Text(h, style="dim") for h in ("乡镇（街道）", "违法", "立案", "整改到位", "销号")),
        Text("整改率", style="dim"),
        Text("违法（绿：整改到位）", style="dim"),
    )
    for g in groups:
        width = round(BAR_WIDTH * g["violations"] / most)
        done = round(width * g["rectified"] / g["violations"]) if g["violations"] else 0
        bar = Text.assemble((" " * done, "on green"), (" " * (width - done), "on yellow"))
        grid.add_row(
            Text(str(g["key"])),
            str(g["violations"]),
            str(g["filed"]),
            str(g["rectified"]),
            str(g["closed_out"]),
            percent(g["rectification_rate"]),
            bar,
        )
    return grid


class OverviewPane(ToldFailures, VerticalScroll):
    """The campaign, its phases, the key figures, townships, weekly finds and alert counts."""

    HELP = (
        "总览：专项行动名称与文号、各阶段期限（按截至日期计算剩余或逾期天数）、主要指标、"
        "各乡镇违法与整改情况、每周发现数，以及各类预警的数量。点击预警按钮查看清单。"
    )

    def __init__(self, session: Session, cutoff: date, fixed: bool) -> None:
        super().__init__(id="overview-pane")
        self.session = session
        self.cutoff = cutoff
        self.fixed = fixed

    def compose(self) -> ComposeResult:
        yield Static(id="campaign-title")
        yield Static(id="kpis")
        yield Horizontal(id="alert-buttons")
        yield Static(id="phases")
        yield Static(id="townships")
        yield Static("每周发现（自第一件起）", classes="caption")
        yield Sparkline([], id="weekly")

    def on_mount(self) -> None:
        self.refresh_data()

    def refresh_data(self) -> None:
        """Three reads, each drawn as soon as it answers: the figures first (the statistics are
        a few rows), then the alerts' counts, then the weekly trend (a scan of the ledger)."""
        self._load_figures()
        self._load_alerts()
        self._load_trend()

    @work(thread=True, exclusive=True, group="overview", exit_on_error=False)
    def _load_figures(self) -> None:
        stats = self.session.stats(as_of=self.cutoff if self.fixed else None)
        self.app.call_from_thread(self._show_figures, stats, self.session.ledger.campaign())

    @work(thread=True, exclusive=True, group="overview-alerts", exit_on_error=False)
    def _load_alerts(self) -> None:
        alerts = self.session.watch_list(listed=0, today=self.cutoff)
        show: Any = self._show_alerts  # a coroutine: call_from_thread awaits it on the UI thread
        self.app.call_from_thread(show, alerts)

    @work(thread=True, exclusive=True, group="overview-trend", exit_on_error=False)
    def _load_trend(self) -> None:
        weeks = self.session.found_per_week(self.cutoff)
        self.app.call_from_thread(self._show_trend, weeks)

    def _show_figures(self, stats: dict[str, Any], campaign: Any) -> None:
        config = campaign.config
        title = Text.assemble(
            (config.name, "bold"),
            "  ",
            (config.district, ""),
            "\n",
            ("文号：", "dim"),
            "、".join(config.documents),
        )
        self.query_one("#campaign-title", Static).update(title)
        phases = [
            (PHASE_SHORT.get(p.key, p.key), p.name, campaign.deadlines.get(p.key, p.due_on))
            for p in config.phases
        ]
        self.query_one("#phases", Static).update(
            Group(
                Text(f"阶段（截至 {self.cutoff.isoformat()}）", style="dim"),
                phase_lines(phases, self.cutoff),
            )
        )
        self.query_one("#kpis", Static).update(kpi_line(stats["total"]))
        self.query_one("#townships", Static).update(township_bars(stats["groups"]))

    def _show_trend(self, weeks: list[tuple[date, int]]) -> None:
        self.query_one("#weekly", Sparkline).data = [n for _, n in weeks] or [0]

    async def _show_alerts(self, alerts: list[Alert]) -> None:
        buttons = self.query_one("#alert-buttons", Horizontal)
        await buttons.remove_children()  # before the new ones: they reuse the ids
        await buttons.mount_all(
            Button(
                f"{short_title(a)} {a.count}",
                id=f"alert-{safe_id(a.kind)}",
                name=a.kind,
                variant="warning" if a.count else "default",
                compact=True,
            )
            for a in alerts
        )
        self._wrap_alerts()

    def on_resize(self) -> None:
        self._wrap_alerts()

    def _wrap_alerts(self) -> None:
        """The alert buttons on one line when they fit, else in a grid of as many columns as
        the widest fits: a line cuts off those past its edge (at 80 columns, two of six)."""
        buttons = self.query_one("#alert-buttons", Horizontal)
        # A button is its label, a pad each side and a margin on the right.
        widths = [cell_len(str(b.label)) + 3 for b in buttons.query(Button)]
        room = self.scrollable_content_region.width
        if not widths or not room or sum(widths) <= room:
            buttons.styles.layout = "horizontal"
            return
        buttons.styles.layout = "grid"
        buttons.styles.grid_size_columns = max(1, room // max(widths))

    @on(Button.Pressed)
    def _open_alert(self, event: Button.Pressed) -> None:
        kind = event.button.name or ""
        screen = self.screen
        show_tab = getattr(screen, "show_tab", None)
        if show_tab is not None:
            show_tab("alerts")
            screen.query_one(AlertsPane).select(kind)


SHORT_TITLES = {
    "overdue": "整改逾期",
    "crime": "达标未移送公安",
    "decision": "立案超期未处罚",
    "supervised": "挂牌督办",
}


def short_title(alert: Alert) -> str:
    """A few characters for a button or a list: the phase alerts by their phase's short name."""
    if alert.kind.startswith("phase:"):
        key = alert.kind.removeprefix("phase:")
        return f"{PHASE_SHORT.get(key, key)}阶段逾期"
    return SHORT_TITLES.get(alert.kind, alert.title.split("（")[0])


def safe_id(kind: str) -> str:
    return kind.replace(":", "-")


ALERT_COLUMNS = ("编号", "乡镇（街道）", "项目名称", "当事人", "状态", "整改期限")


class AlertsPane(ToldFailures, Horizontal):
    """Each alert as a list; Enter on a case opens it."""

    HELP = (
        "预警：左侧为预警类别及数量（整改逾期、达到刑事追诉标准未移送公安、立案超期未处罚、"
        "各阶段期限已过未完成）；右侧为该类的案件，回车打开案件。"
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "open", "打开案件", show=False)]
    LISTED = 500

    def __init__(self, session: Session, cutoff: date) -> None:
        super().__init__(id="alerts-pane")
        self.session = session
        self.cutoff = cutoff
        self.alerts: list[Alert] = []
        self.wanted = ""

    def compose(self) -> ComposeResult:
        yield OptionList(id="alert-kinds")
        with Vertical():
            yield Static(id="alert-title")
            table: DataTable[Any] = DataTable(id="alert-cases", cursor_type="row")
            yield table

    def on_mount(self) -> None:
        self.query_one("#alert-cases", DataTable).add_columns(*ALERT_COLUMNS)
        self.refresh_data()

    def refresh_data(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="alerts", exit_on_error=False)
    def _load(self) -> None:
        alerts = self.session.watch_list(listed=self.LISTED, today=self.cutoff)
        self.app.call_from_thread(self._show_kinds, alerts)

    def _show_kinds(self, alerts: list[Alert]) -> None:
        self.alerts = alerts
        kinds = self.query_one("#alert-kinds", OptionList)
        highlighted = kinds.highlighted
        kinds.clear_options()
        kinds.add_options(Option(Text(f"{short_title(a)}  {a.count}"), id=a.kind) for a in alerts)
        if self.wanted:
            self.select(self.wanted)
        elif alerts:
            kinds.highlighted = highlighted if highlighted is not None else 0

    def select(self, kind: str) -> None:
        self.wanted = kind
        if not self.alerts:  # not read yet: _show_kinds selects it
            return
        kinds = self.query_one("#alert-kinds", OptionList)
        for index, alert in enumerate(self.alerts):
            if alert.kind == kind:
                kinds.highlighted = index
                kinds.focus()

    @on(OptionList.OptionHighlighted, "#alert-kinds")
    def _kind_chosen(self, event: OptionList.OptionHighlighted) -> None:
        alert = self.alerts[event.option_index]
        self.wanted = alert.kind
        more = f"（列出前 {len(alert.first)} 件）" if alert.count > len(alert.first) else ""
        self.query_one("#alert-title", Static).update(
            Text(f"{alert.title}：{alert.count} 项{more}")
        )
        self._load_cases(alert)

    @work(thread=True, exclusive=True, group="alert-cases", exit_on_error=False)
    def _load_cases(self, alert: Alert) -> None:
        rows = self.session.rows(alert.first) if not alert.kind.startswith("phase:contacts") else []
        self.app.call_from_thread(self._show_cases, alert, rows)

    def _show_cases(self, alert: Alert, rows: list[LedgerRow]) -> None:
        table = self.query_one("#alert-cases", DataTable)
        table.clear()
        if not rows:  # units without a contact, say
            for name in alert.first:
                table.add_row(Text(name), "", "", "", "", "", key="")
            return
        for row in rows:
            site = row.case.site
            table.add_row(
                Text(row.case.ref),
                Text(site.township),
                Text(site.project_name),
                Text(site.party_name),
                Text(row.state),
                Text(row.due_on.isoformat() if row.due_on else ""),
                key=row.case.ref,
            )

    @on(DataTable.RowSelected, "#alert-cases")
    def _open(self, event: DataTable.RowSelected) -> None:
        ref = event.row_key.value
        if ref:
            open_case = getattr(self.app, "open_case", None)
            if open_case is not None:
                open_case(ref)

    def palette_commands(self) -> list[tuple[str, str, Any]]:
        return [
            (f"预警：{short_title(a)}", f"{a.title}，{a.count} 项", lambda k=a.kind: self._jump(k))
            for a in self.alerts
        ]

    def _jump(self, kind: str) -> None:
        show_tab = getattr(self.screen, "show_tab", None)
        if show_tab is not None:
            show_tab("alerts")
        self.select(kind)
