"""`5` 导出导入: a table for a cutoff to a file, with progress and cancel; a township's sheet in,
each row's errors listed, written only when confirmed."""

import threading
from datetime import date
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, DataTable, Input, Label, ProgressBar, Select, Static

from domain.errors import DomainError
from service.session import EXPORT_TITLES, Session, parse_cutoffs
from tui.failures import ToldFailures

if TYPE_CHECKING:
    from exports.importer import Report

SUFFIX = {"events": ".jsonl"}


class TransferPane(ToldFailures, Vertical):
    HELP = (
        "导出：选择表格、截至日期、分组、是否遮蔽个人信息和保存路径，按“导出”；导出中可取消。"
        "导入：填写 xlsx 或 ods 文件路径，按“检查”列出每行的错误；无错误时按“确认写入”。"
    )

    def __init__(self, session: Session, cutoff: date) -> None:
        super().__init__(id="transfer-pane")
        self.session = session
        self.cutoff = cutoff
        self.cancel = threading.Event()
        self.report: Report | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text("导出", style="bold"))
        with Horizontal(classes="form-row"):
            yield Label("表格")
            yield Select(
                [(title, kind) for kind, title in EXPORT_TITLES.items()],
                value="table2",
                allow_blank=False,
                id="export-kind",
            )
            yield Label("分组")
            yield Select(
                [("按乡镇", "township"), ("按责任单位", "unit")],
                value="township",
                allow_blank=False,
                id="export-by",
            )
        with Horizontal(classes="form-row"):
            yield Label("截至")
            yield Input(self.cutoff.isoformat(), placeholder="YYYY-MM-DD", id="export-as-of")
            yield Checkbox("不遮蔽个人信息", id="export-unmasked")
        with Horizontal(classes="form-row"):
            yield Label("路径")
            yield Input(self._default_path("table2"), id="export-path")
            yield Button("导出", id="export", variant="primary", compact=True)
            yield Button("取消", id="export-cancel", compact=True, disabled=True)
        yield ProgressBar(total=1, id="export-progress", show_eta=False)
        yield Static(id="export-result")
        yield Static(Text("导入", style="bold"))
        with Horizontal(classes="form-row"):
            yield Label("文件")
            yield Input(placeholder="xlsx 或 ods 文件路径", id="import-path")
            yield Button("检查", id="import-check", compact=True)
            yield Button("确认写入", id="import-apply", compact=True, disabled=True)
        yield Static(id="import-result")
        table: DataTable[Any] = DataTable(id="import-errors", cursor_type="row")
        yield table

    def _default_path(self, kind: str) -> str:
        name = f"{EXPORT_TITLES[kind].replace(' ', '')}-{self.cutoff.isoformat()}"
        return name + SUFFIX.get(kind, ".xlsx")  # in the folder the dashboard was started from

    @on(Select.Changed, "#export-kind")
    def _kind_changed(self, event: Select.Changed) -> None:
        self.query_one("#export-path", Input).value = self._default_path(str(event.value))

    @on(Button.Pressed, "#export")
    def start_export(self) -> None:
        kind = str(self.query_one("#export-kind", Select).value)
        try:
            as_of, _ = parse_cutoffs(self.query_one("#export-as-of", Input).value.strip(), None)
        except DomainError as error:
            self.app.notify(error.message, title="截至日期", severity="error")
            self.query_one("#export-as-of", Input).focus()
            return
        self.cancel.clear()
        self.query_one("#export", Button).disabled = True
        self.query_one("#export-cancel", Button).disabled = False
        self.query_one("#export-progress", ProgressBar).update(total=None, progress=0)
        self.query_one("#export-result", Static).update(Text("导出中……"))
        self._export(
            kind,
            self.query_one("#export-path", Input).value.strip(),
            as_of,
            str(self.query_one("#export-by", Select).value),
            self.query_one("#export-unmasked", Checkbox).value,
        )

    @on(Button.Pressed, "#export-cancel")
    def cancel_export(self) -> None:
        self.cancel.set()

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def _export(self, kind: str, path: str, as_of: date | None, by: str, unmasked: bool) -> None:
        def progress(done: int, total: int) -> None:
            self.app.call_from_thread(self._progress, done, total)

        try:
            done = self.session.export(
                kind,
                path,
                as_of=as_of,
                by=by,
                unmasked=unmasked,
                progress=progress,
                cancel=self.cancel,
            )
            message = Text(f"已导出 {done.count} 项 → {done.path}；{done.stamp.line()}")
        except DomainError as error:
            message = Text(f"未导出：{error.message}", style="red")
        self.app.call_from_thread(self._finished, message)

    def _progress(self, done: int, total: int) -> None:
        self.query_one("#export-progress", ProgressBar).update(total=total, progress=done)

    def _finished(self, message: Text) -> None:
        self.query_one("#export", Button).disabled = False
        self.query_one("#export-cancel", Button).disabled = True
        bar = self.query_one("#export-progress", ProgressBar)
        bar.update(total=1, progress=1)
        self.query_one("#export-result", Static).update(message)

    @on(Button.Pressed, "#import-check")
    @on(Input.Submitted, "#import-path")
    def check_import(self) -> None:
        path = self.query_one("#import-path", Input).value.strip()
        if not path:
            self.app.notify("请填写要导入的文件路径", title="导入", severity="error")
            return
        self.query_one("#import-apply", Button).disabled = True
        self.query_one("#import-result", Static).update(Text("检查中……"))
        self._plan(path)

    @work(thread=True, exclusive=True, group="import", exit_on_error=False)
    def _plan(self, path: str) -> None:
        try:
            report = self.session.plan_import(path)
        except DomainError as error:
            self.app.call_from_thread(
                self.query_one("#import-result", Static).update,
                Text(f"无法读取：{error.message}", style="red"),
            )
            return
        self.app.call_from_thread(self._show_plan, report)

    def _show_plan(self, report: "Report") -> None:
        self.report = report
        table = self.query_one("#import-errors", DataTable)
        table.clear(columns=True)
        table.add_columns("问题")
        for line in report.errors:
            table.add_row(Text(line))
        if report.errors:
            summary = Text(f"有 {len(report.errors)} 处错误，全部不会写入", style="red")
        else:
            summary = Text(
                f"可{report.added()}（{len(report.commands)} 条命令）；"
                f"已存在且相同 {len(report.same_rows)} 行"
            )
        self.query_one("#import-result", Static).update(summary)
        self.query_one("#import-apply", Button).disabled = (
            bool(report.errors) or not report.commands
        )

    @on(Button.Pressed, "#import-apply")
    def apply_import(self) -> None:
        if self.report is not None:
            self.query_one("#import-apply", Button).disabled = True
            self._apply(self.report)

    @work(thread=True, exclusive=True, group="import", exit_on_error=False)
    def _apply(self, report: "Report") -> None:
        result = self.session.apply_import(report)
        if result.written:
            text = Text(f"已导入：{report.added()}（{result.events} 个事件）")
        else:
            text = Text("未写入：" + "；".join(report.errors[:3]), style="red")
        self.app.call_from_thread(self.query_one("#import-result", Static).update, text)
        refresh_all = getattr(self.app, "refresh_all", None)
        if refresh_all is not None and result.written:
            self.app.call_from_thread(refresh_all)

    def palette_commands(self) -> list[tuple[str, str, Any]]:
        commands: list[tuple[str, str, Any]] = []
        for kind, title in EXPORT_TITLES.items():
            commands.append((f"导出{title}", "选择这张表并开始导出", lambda k=kind: self._pick(k)))
        commands.append(("导入表格", "检查并导入乡镇报回的台账表", self.check_import))
        return commands

    def _pick(self, kind: str) -> None:
        self.query_one("#export-kind", Select).value = kind
        self.call_after_refresh(self.start_export)
