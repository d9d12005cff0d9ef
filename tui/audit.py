"""`4` 审计: the statistics as they were at a business date and a recorded time, two cutoffs
compared, and one case's full history."""

import threading
from datetime import date, datetime
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, Select, Static

from domain.errors import DomainError
from domain.events import EVENT_CLASSES
from domain.values import label, m2_to_mu
from projections.ledger import LedgerRow
from service.audit import VerifyResult
from service.session import HistoryEntry, LogEntry, Session, parse_cutoffs
from tui.failures import ToldFailures

MEASURES = (
    ("found", "发现"),
    ("dismissed", "排除"),
    ("violations", "违法"),
    ("filed", "立案"),
    ("decided", "处罚决定"),
    ("referred_police", "移送公安"),
    ("rectified", "整改到位"),
    ("closed_out", "销号"),
    ("overdue", "逾期"),
    ("over_crime_threshold_unreferred", "达标未移送"),
    ("area_m2", "占地（㎡）"),
    ("fines_decided_yuan", "罚没款（元）"),
    ("fines_paid_yuan", "已缴（元）"),
    ("rectification_rate", "整改率"),
)


EVENT_TITLES = tuple(dict.fromkeys(cls.TITLE for cls in EVENT_CLASSES))
HISTORY_COLUMNS = ("业务日期", "记录时间", "操作人", "事件", "内容", "更正原因")


def history_cells(entry: HistoryEntry) -> list[Text]:
    """An event as a table row: the reason in a column of its own, the rest as one line."""
    content = " ".join(f"{k}={v}" for k, v in entry.fields if k != label("reason"))
    return [
        Text(entry.on.isoformat()),
        Text(entry.recorded_at.strftime("%Y-%m-%d %H:%M:%S")),
        Text(entry.actor),
        Text(entry.title),
        Text(content[:80]),
        Text(entry.reason),
    ]


class AuditPane(ToldFailures, Vertical):
    """Cutoffs typed as on the command line (`--as-of`, `--known-at`)."""

    HELP = (
        "审计：填写业务日期截止（YYYY-MM-DD）和记录时间截止（如 2022-02-28T18:00，无时区视为"
        "北京时间），查看当时的统计；填写第二组截止后按“比较”，看各项指标的变化；"
        "按操作人、事件类型、业务日期范围浏览事件日志；"
        "输入编号查看案件的全部历史（谁、何时记录、业务日期、更正原因）；"
        "按“核验”重算哈希链，可填导出件上的数据指纹，证明此前的事件未被改写。"
    )

    LOG_LIMIT = 500

    def __init__(self, session: Session, cutoff: date) -> None:
        super().__init__(id="audit-pane")
        self.session = session
        self.cutoff = cutoff
        self.cancel = threading.Event()

    def compose(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label("截至A")
            yield Input(self.cutoff.isoformat(), placeholder="业务日期 YYYY-MM-DD", id="as-of-a")
            yield Input(placeholder="记录时间（可空）", id="known-at-a")
            yield Button("统计", id="show", compact=True)
            yield Button("台账", id="ledger-at", compact=True)
        with Horizontal(classes="form-row"):
            yield Label("截至B")
            yield Input(placeholder="业务日期 YYYY-MM-DD", id="as-of-b")
            yield Input(placeholder="记录时间（可空）", id="known-at-b")
            yield Button("比较", id="compare", compact=True)
        with Horizontal(classes="form-row"):
            yield Label("日志")
            yield Input(placeholder="操作人（可空）", id="log-actor")
            yield Select([(Text(t), t) for t in EVENT_TITLES], prompt="事件：全部", id="log-title")
            yield Input(placeholder="业务日期从", id="log-since")
            yield Input(placeholder="到", id="log-until")
            yield Button("浏览", id="browse", compact=True)
        with Horizontal(classes="form-row"):
            yield Label("编号")
            yield Input(placeholder="案件编号，回车查看历史", id="history-ref")
        with Horizontal(classes="form-row"):
            yield Label("核验")
            yield Input(placeholder="导出件上的数据指纹 N:HASH（可空）", id="verify-fingerprint")
            yield Button("核验", id="verify", compact=True)
            yield Button("取消", id="verify-cancel", compact=True, disabled=True)
        yield ProgressBar(total=1, id="verify-progress", show_eta=False)
        yield Static(id="verify-verdict")
        yield Static(id="audit-note")
        table: DataTable[Any] = DataTable(id="audit-table", cursor_type="row")
        yield table

    def _cutoffs(self, which: str) -> tuple[date | None, datetime | None]:
        as_of = self.query_one(f"#as-of-{which}", Input).value.strip() or None
        known_at = self.query_one(f"#known-at-{which}", Input).value.strip() or None
        try:
            return parse_cutoffs(as_of, known_at)
        except DomainError as error:
            field = "as-of" if error.field == "as_of" else "known-at"
            self.query_one(f"#{field}-{which}", Input).focus()
            raise DomainError(f"截至{which.upper()}：{error.message}") from None

    @on(Button.Pressed, "#show")
    def _show_pressed(self) -> None:
        try:
            cutoff = self._cutoffs("a")
        except DomainError as error:
            self.app.notify(error.message, severity="error")
            return
        self._load([cutoff])

    @on(Button.Pressed, "#compare")
    def _compare_pressed(self) -> None:
        try:
            cutoffs = [self._cutoffs("a"), self._cutoffs("b")]
        except DomainError as error:
            self.app.notify(error.message, severity="error")
            return
        self._load(cutoffs)

    @on(Button.Pressed, "#ledger-at")
    def _ledger_pressed(self) -> None:
        try:
            cutoff = self._cutoffs("a")
        except DomainError as error:
            self.app.notify(error.message, severity="error")
            return
        self.query_one("#audit-note", Static).update(Text("回放中……"))
        self._load_ledger(cutoff)

    @work(thread=True, exclusive=True, group="audit", exit_on_error=False)
    def _load_ledger(self, cutoff: tuple[date | None, datetime | None]) -> None:
        rows = self.session.ledger_at(*cutoff)
        self.app.call_from_thread(self._show_ledger, cutoff, rows)

    def _show_ledger(
        self, cutoff: tuple[date | None, datetime | None], rows: list[LedgerRow]
    ) -> None:
        table = self.query_one("#audit-table", DataTable)
        table.clear(columns=True)
        table.add_columns("编号", "乡镇（街道）", "项目名称", "状态", "占地（亩）", "整改期限")
        for row in rows[: self.LOG_LIMIT]:
            site = row.case.site
            table.add_row(
                Text(row.case.ref),
                Text(site.township),
                Text(site.project_name),
                Text(row.state),
                str(m2_to_mu(site.area_m2)),
                row.due_on.isoformat() if row.due_on else "",
            )
        more = f"（只列前 {self.LOG_LIMIT} 件）" if len(rows) > self.LOG_LIMIT else ""
        note = f"台账 {cutoff_name(*cutoff)}：共 {len(rows)} 件{more}"
        self.query_one("#audit-note", Static).update(Text(note))

    @work(thread=True, exclusive=True, group="audit", exit_on_error=False)
    def _load(self, cutoffs: list[tuple[date | None, datetime | None]]) -> None:
        results = [self.session.stats(as_of=a, known_at=k) for a, k in cutoffs]
        changed = self.session.changed_cases(*cutoffs) if len(cutoffs) == 2 else []
        self.app.call_from_thread(self._show_stats, cutoffs, results, changed)

    def _show_stats(
        self,
        cutoffs: list[tuple[date | None, datetime | None]],
        results: list[dict[str, Any]],
        changed: list[tuple[str, str, str]],
    ) -> None:
        table = self.query_one("#audit-table", DataTable)
        table.clear(columns=True)
        names = [cutoff_name(a, k) for a, k in cutoffs]
        if len(results) == 1:
            table.add_columns("分组", *(name for _, name in MEASURES))
            groups = [*results[0]["groups"], {"key": "合计", **results[0]["total"]}]
            for group in groups:
                table.add_row(Text(str(group["key"])), *(str(group[k]) for k, _ in MEASURES))
            note = f"统计 {names[0]}"
        else:
            table.add_columns("指标", names[0], names[1], "变化")
            first, second = results[0]["total"], results[1]["total"]
            for key, name in MEASURES:
                change = _change(first[key], second[key])
                table.add_row(name, str(first[key]), str(second[key]), Text(change))
            if changed:
                table.add_row(Text("变化的案件", style="bold"), "", "", "")
            for ref, old, new in changed[: self.LOG_LIMIT]:
                table.add_row(Text(ref), Text(old or "（尚无）"), Text(new or "（尚无）"), "改变")
            note = f"比较 {names[0]} 与 {names[1]}（合计）：{len(changed)} 个案件有变化"
        self.query_one("#audit-note", Static).update(Text(note))

    @on(Button.Pressed, "#browse")
    def browse(self) -> None:
        days = []
        for field in ("log-since", "log-until"):
            text = self.query_one(f"#{field}", Input).value.strip() or None
            try:
                days.append(parse_cutoffs(text, None)[0])
            except DomainError as error:
                self.app.notify(error.message.replace("--as-of", "业务日期"), severity="error")
                self.query_one(f"#{field}", Input).focus()
                return
        title = self.query_one("#log-title", Select).value
        self._load_log(
            self.query_one("#log-actor", Input).value.strip(),
            title if isinstance(title, str) else "",
            days[0],
            days[1],
        )

    @work(thread=True, exclusive=True, group="audit", exit_on_error=False)
    def _load_log(self, actor: str, title: str, since: date | None, until: date | None) -> None:
        found = self.session.event_log(
            actor=actor, title=title, since=since, until=until, limit=self.LOG_LIMIT
        )
        self.app.call_from_thread(self._show_log, found)

    def _show_log(self, found: list[LogEntry]) -> None:
        table = self.query_one("#audit-table", DataTable)
        table.clear(columns=True)
        table.add_columns("序号", "编号", *HISTORY_COLUMNS)
        for item in found:
            table.add_row(str(item.position), Text(item.ref), *history_cells(item.entry))
        more = f"（只列前 {self.LOG_LIMIT} 个）" if len(found) >= self.LOG_LIMIT else ""
        self.query_one("#audit-note", Static).update(Text(f"事件日志：{len(found)} 个{more}"))

    @on(Button.Pressed, "#verify")
    def start_verify(self) -> None:
        self.cancel.clear()
        self.query_one("#verify", Button).disabled = True
        self.query_one("#verify-cancel", Button).disabled = False
        self.query_one("#verify-verdict", Static).update(Text("核验中……"))
        fingerprint = self.query_one("#verify-fingerprint", Input).value.strip() or None
        self._verify(fingerprint)

    @on(Button.Pressed, "#verify-cancel")
    def cancel_verify(self) -> None:
        self.cancel.set()

    @work(thread=True, exclusive=True, group="verify", exit_on_error=False)
    def _verify(self, fingerprint: str | None) -> None:
        def progress(done: int, total: int) -> None:
            self.app.call_from_thread(
                self.query_one("#verify-progress", ProgressBar).update, total=total, progress=done
            )

        try:
            result = self.session.verify(fingerprint, progress, self.cancel)
            verdict = verdict_text(result)
        except DomainError as error:
            verdict = Text(error.message, style="bold red")
        self.app.call_from_thread(self._verified, verdict)

    def _verified(self, verdict: Text) -> None:
        self.query_one("#verify", Button).disabled = False
        self.query_one("#verify-cancel", Button).disabled = True
        self.query_one("#verify-verdict", Static).update(verdict)

    @on(Input.Submitted, "#history-ref")
    def _history_submitted(self, event: Input.Submitted) -> None:
        ref = event.value.strip()
        if ref:
            self._load_history(ref)

    @work(thread=True, exclusive=True, group="audit", exit_on_error=False)
    def _load_history(self, ref: str) -> None:
        entries = self.session.history(ref)
        self.app.call_from_thread(self._show_history, ref, entries)

    def _show_history(self, ref: str, entries: list[Any]) -> None:
        table = self.query_one("#audit-table", DataTable)
        table.clear(columns=True)
        table.add_columns(*HISTORY_COLUMNS)
        for entry in entries:
            table.add_row(*history_cells(entry))
        self.query_one("#audit-note", Static).update(
            Text(f"案件 {ref} 的历史：{len(entries)} 个事件")
        )

    def palette_commands(self) -> list[tuple[str, str, Any]]:
        return [
            ("审计：查看截至统计", "按截至A查看统计", self._show_pressed),
            ("审计：比较两个截至", "比较截至A与截至B的各项指标", self._compare_pressed),
            ("审计：核验哈希链", "重算哈希链，证明历史未被改写", self.start_verify),
        ]


def verdict_text(result: VerifyResult) -> Text:
    """verify's verdict as the auditor reads it: green when nothing was rewritten."""
    if result.ok:
        lines = [f"核验通过：{result.checked} 个事件的哈希链完整，数据指纹 {result.fingerprint}"]
        if result.fingerprint_ok:
            lines.append("与所给指纹一致：此前的事件未被改写")
        if result.linked_on:
            lines.append(result.linked_on)
        return Text("\n".join(lines), style="bold green")
    return Text(f"核验未通过：{result.difference}", style="bold red")


def cutoff_name(as_of: date | None, known_at: datetime | None) -> str:
    text = f"截至 {as_of.isoformat()}" if as_of else "截至今天"
    return text + (f"，记录于 {known_at.isoformat(timespec='minutes')} 前" if known_at else "")


def _change(before: Any, after: Any) -> str:
    try:
        from decimal import Decimal

        delta = Decimal(str(after)) - Decimal(str(before))
    except ArithmeticError:
        return ""
    if not delta:
        return "不变"
    return f"+{delta}" if delta > 0 else str(delta)
