"""The terminal dashboard: five screens as tabs, a case screen pushed over them, all in Chinese.

Everything it shows or does goes through `service.session.Session`, in worker threads: the
event loop never waits on the database.
"""

from collections.abc import Iterable
from datetime import date
from functools import partial
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.command import CommandPalette, Hit, Hits, Provider
from textual.containers import VerticalScroll
from textual.lazy import Lazy
from textual.screen import ModalScreen, Screen
from textual.widget import AwaitMount
from textual.widgets import (
    Footer,
    Input,
    Select,
    Static,
    TabbedContent,
    TabPane,
    Tabs,
    TextArea,
)
from textual.worker import Worker, WorkerState

from domain.errors import DomainError
from domain.values import china_today
from service.session import Session
from tui.audit import AuditPane
from tui.overview import AlertsPane, OverviewPane
from tui.transfer import TransferPane

TABS = (
    ("overview", "总览"),
    ("ledger", "台账"),
    ("alerts", "预警"),
    ("audit", "审计"),
    ("transfer", "导出导入"),
)
# Built the first time their tab is shown: building them with the rest cost the first paint a
# fifth of its processor time (bench/dashboard_live.py, first_paint_cpu_s).
BUILT_WHEN_SHOWN: dict[str, type[AlertsPane | AuditPane | TransferPane]] = {
    "alerts": AlertsPane,
    "audit": AuditPane,
    "transfer": TransferPane,
}
POLL_SECONDS = 0.25  # another terminal's event is on screen within a second


class AppHeader(Static):
    """The product, the actor and the cutoff, always visible."""

    def __init__(self, actor: str, role: str, cutoff: date, fixed: bool) -> None:
        super().__init__(id="app-header")
        self.actor, self.role, self.cutoff, self.fixed = actor, role, cutoff, fixed

    def render(self) -> Text:
        who = f"{self.actor}（{self.role}）" if self.role else self.actor
        when = f"截至 {self.cutoff.isoformat()}" + ("" if self.fixed else "（今天）")
        line = Text.assemble(
            (" 违法用地专项行动台账 ", "bold reverse"), "  操作人 ", (who, "bold"), "  ", when
        )
        return line


class HelpScreen(ModalScreen[None]):
    """f1 / ?: help for the focused widget, then the keys of the screen."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,question_mark,q", "dismiss_help", "关闭")
    ]

    def __init__(self, topic: str, keys: Iterable[tuple[str, str]]) -> None:
        super().__init__()
        self.topic = topic
        self.keys = list(keys)

    def compose(self) -> ComposeResult:
        lines = [self.topic, "", "按键："]
        lines += [f"  {key:<10} {text}" for key, text in self.keys]
        lines += ["", "按 Esc 关闭"]
        with VerticalScroll(id="help-box"):
            yield Static(Text("\n".join(lines)), id="help-text")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)


class ChinesePalette(CommandPalette):
    """Textual's palette with its English placeholder and "No matches found" in Chinese."""

    def __init__(self) -> None:
        super().__init__(placeholder="搜索命令……", id="--command-palette")

    def _start_no_matches_countdown(self, search_value: str) -> None:
        super()._start_no_matches_countdown(search_value)
        timer = self._no_matches_timer
        if timer is None or not search_value:
            return
        timer.stop()

        def show_none() -> None:
            from textual.command import CommandList
            from textual.widgets.option_list import Option

            commands = self.query_one(CommandList)
            commands.add_option(Option(Text("没有匹配的命令"), disabled=True, id=self._NO_MATCHES))
            self._list_visible = True

        self._no_matches_timer = self.set_timer(self._NO_MATCHES_COUNTDOWN, show_none)


class ScreenCommands(Provider):
    """The palette lists every action of the current screen, in Chinese."""

    def _commands(self) -> list[tuple[str, str, Any]]:
        app = self.app
        assert isinstance(app, LandLedgerApp)
        return app.palette_commands(self.screen)

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield Hit(1.0, name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


class MainScreen(Screen[None]):
    """The five tabs; number keys switch them when no text field has focus."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "tab('overview')", "总览", show=False),
        Binding("2", "tab('ledger')", "台账", show=False),
        Binding("3", "tab('alerts')", "预警", show=False),
        Binding("4", "tab('audit')", "审计", show=False),
        Binding("5", "tab('transfer')", "导出", show=False),
    ]

    def compose(self) -> ComposeResult:
        app = self.app
        assert isinstance(app, LandLedgerApp)
        from tui.ledger import LedgerPane

        yield app.header_widget()
        with TabbedContent(id="tabs", initial="overview"):
            with TabPane("1 总览", id="overview"):
                yield OverviewPane(app.session, app.cutoff, app.fixed_cutoff)
            # 台账 is built just after the first paint (a user's first key is often 2); the
            # others when first shown (see BUILT_WHEN_SHOWN).
            with TabPane("2 台账", id="ledger"):
                yield Lazy(LedgerPane(app.session, app.cutoff, app.fixed_cutoff))
            for number, (tab, name) in enumerate(TABS[2:], start=3):
                yield TabPane(f"{number} {name}", id=tab)
        yield Footer(show_command_palette=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Number keys type digits in a text field; they switch screens everywhere else.
        return not (action == "tab" and isinstance(self.focused, Input | TextArea))

    def action_tab(self, tab: str) -> None:
        self.show_tab(tab)

    def show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        pane = self.query_one(f"#{tab}", TabPane)
        building = self._build(pane)
        if building is None:
            self._focus_list(pane)
        else:
            self.call_later(self._focus_when_built, building, pane)

    def _build(self, pane: TabPane) -> AwaitMount | None:
        """The screen of a tab shown for the first time (see compose); None once built."""
        kind = BUILT_WHEN_SHOWN.get(pane.id or "")
        if kind is None or pane.children:
            return None
        app = self.app
        assert isinstance(app, LandLedgerApp)
        return pane.mount(kind(app.session, app.cutoff))

    async def _focus_when_built(self, building: AwaitMount, pane: TabPane) -> None:
        await building
        self._focus_list(pane)

    def _focus_list(self, pane: TabPane) -> None:
        # Focus the screen's list or table, not a text field: the number keys keep working.
        lists = [w for w in pane.query("DataTable, OptionList, LedgerTable") if w.can_focus]
        mine = [w for w in lists if not any(isinstance(a, Select) for a in w.ancestors)]
        target = mine[0] if mine else None
        (target or self.query_one(Tabs)).focus()

    @on(TabbedContent.TabActivated)
    def _tab_shown(self, event: TabbedContent.TabActivated) -> None:
        self._build(event.pane)  # a click on the tab shows it too
        self.refresh_bindings()


class LandLedgerApp(App[None]):
    """`landledger tui`: the dashboard over one store, for one actor, at one cutoff."""

    TITLE = "违法用地专项行动台账"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = True
    COMMAND_PALETTE_BINDING = "ctrl+p"
    COMMANDS: ClassVar[set[Any]] = {ScreenCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+p", "command_palette", "命令", priority=True, id="palette"),
        Binding("f1", "help", "帮助", id="help"),
        Binding("question_mark", "help", "帮助", show=False, id="help2"),
        Binding("ctrl+q", "quit", "退出", priority=True, id="quit"),
        Binding("ctrl+c", "quit_hint", show=False, system=True),
    ]

    def __init__(self, session: Session, *, as_of: date | None = None) -> None:
        super().__init__()
        self.session = session
        self.fixed_cutoff = as_of is not None
        self.cutoff = as_of or china_today()
        self._position = 0

    # The frame -------------------------------------------------------------------------------

    def header_widget(self) -> AppHeader:
        return AppHeader(self.session.actor, self.session.role(), self.cutoff, self.fixed_cutoff)

    def on_mount(self) -> None:
        self.theme = "textual-dark"
        # Where the log stands before any screen reads: a later event is always noticed.
        self._position = self.session.last_position()
        self.push_screen(MainScreen())
        self.set_interval(POLL_SECONDS, self._poll)

    def action_command_palette(self) -> None:
        if not self.screen.query("#--command-palette") and not isinstance(
            self.screen, CommandPalette
        ):
            self.push_screen(ChinesePalette())

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield SystemCommand("退出", "关闭台账终端（ctrl+q）", self.exit)
        yield SystemCommand("帮助", "当前控件和屏幕的帮助（f1）", self.action_help)

    def action_quit_hint(self) -> None:
        self.notify("按 ctrl+q 退出", title="要退出吗？")

    def action_help(self) -> None:
        focused = self.screen.focused
        topic = "当前屏幕"
        for widget in [focused, *(focused.ancestors if focused else [])]:
            help_text = getattr(widget, "HELP", None)
            if isinstance(help_text, str) and help_text:
                topic = help_text
                break
        keys = [
            (b.binding.key_display or b.binding.key, b.binding.description)
            for b in self.screen.active_bindings.values()
            if b.binding.description
        ]
        keys = list(dict.fromkeys(keys))
        self.push_screen(HelpScreen(topic, keys))

    def palette_commands(self, screen: Screen[Any]) -> list[tuple[str, str, Any]]:
        """Every action of the current screen, named as a user would look for it."""
        found: list[tuple[str, str, Any]] = []
        if isinstance(screen, MainScreen):
            for tab, name in TABS:
                found.append((f"切换到{name}", f"显示{name}屏幕", partial(screen.show_tab, tab)))
        for widget in screen.query("*"):
            commands = getattr(widget, "palette_commands", None)
            if callable(commands) and widget is not screen:
                found.extend(commands())
        if hasattr(screen, "palette_commands") and not isinstance(screen, MainScreen):
            found.extend(screen.palette_commands())
        found.append(("刷新", "重新读取数据", self.refresh_all))
        found.append(("帮助", "当前控件和屏幕的帮助", self.action_help))
        found.append(("退出", "关闭台账终端", self.exit))
        return found

    # Opening a case -----------------------------------------------------------------------

    def open_case(self, ref: str) -> None:
        from tui.case import CaseScreen

        self.push_screen(CaseScreen(self.session, ref, self.cutoff))

    # Live: another terminal's events -------------------------------------------------------

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def _poll(self) -> None:
        position = self.session.last_position()
        if position != self._position:
            self._position = position
            self.session.catch_up()
            self.call_from_thread(self.refresh_all)

    def refresh_all(self) -> None:
        """Every view re-reads what it shows (after a write here or anywhere)."""
        for screen in self.screen_stack:
            for widget in [screen, *screen.query("*")]:
                refresh_data = getattr(widget, "refresh_data", None)
                if callable(refresh_data):
                    refresh_data()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.report(event.worker.error)

    def report(self, error: BaseException) -> None:
        """A worker's failure: a notification in Chinese, never a traceback."""
        title = "错误" if isinstance(error, DomainError) else "出错了"
        self.notify(self.session.explain(error), title=title, severity="error", timeout=8)
