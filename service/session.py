"""What a front end can do, for one actor on one store: the command line and the dashboard call
these and nothing below them. Each method checks who may do it, applies the masking policy,
and keeps the read model caught up with the log."""

import gc
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from domain import events as e
from domain.commands import Command, parse_command
from domain.errors import DomainError, os_reason
from domain.values import (
    CHINA,
    china_today,
    label,
    masked,
    parse_iso_date,
    parse_timestamp,
    printable,
    show_amount,
)
from exports.stamp import Stamp, stamp
from projections import ledger_query
from projections.alerts import Alert
from projections.dashboard import found_per_week
from projections.ledger import Fact, LedgerRow
from projections.ledger_query import LedgerPages, LedgerQuery
from projections.problems import alerts as row_alerts
from projections.read import Reader
from projections.readmodel import ReadModel
from service import audit
from service.audit import VerifyResult
from service.ledger import CommandRejected, LandLedger, Recorded, Unreadable
from storage import chain
from storage.store import failure_message, is_database_error, new_cipher_key

if TYPE_CHECKING:
    from exports.importer import Report

Progress = Callable[[int, int], None]


@contextmanager
def without_cycle_collector() -> Iterator[None]:
    """A command runs once and exits, making millions of objects but hardly any reference
    cycles (a city's append: 12 collections freed nothing; its rebuild: 756 freed 5 objects).
    Each collection still visited the young objects and the old ones they point to, a fifth of
    a province's append (bench/run.py): so a command does without the cycle collector; plain
    reference counting frees what it makes. The dashboard, which runs for days, keeps it."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()  # for callers that go on (the tests call main in their own process)


class Cancelled(DomainError):
    def __init__(self) -> None:
        super().__init__("已取消，未写入文件")


@dataclass(frozen=True)
class HistoryEntry:
    """One event of a case as a person reads it: fields labelled in Chinese, personal data
    masked unless asked for."""

    on: date
    recorded_at: datetime  # in China time
    actor: str  # with the unit, when the actor has one
    title: str  # the event's Chinese name
    fields: tuple[tuple[str, str], ...]  # (label, shown value)
    reason: str  # a correction's or reopening's reason, else ""


@dataclass(frozen=True)
class LogEntry:
    """An event of the whole log: its position and case, then what history shows of it."""

    position: int
    ref: str
    entry: HistoryEntry


@dataclass
class Written:
    """What a `record` did: the batch, and whether the read model has caught up with it."""

    recorded: Recorded
    read_model_error: str = ""  # the write is committed all the same; the next reader catches up


@dataclass(frozen=True)
class Exported:
    kind: str
    path: str
    count: int
    stamp: Stamp


@dataclass
class ImportResult:
    report: "Report"
    written: bool = False
    events: int = 0
    errors: list[str] = field(default_factory=list)


EXPORT_TITLES = {
    "table2": "附件2 统计表",
    "ledger": "台账",
    "problems": "问题清单",
    "contacts": "附件1 联络人",
    "events": "事件日志",
    "template": "台账导入模板",
}
HIDDEN_IN_HISTORY = {
    "originator_id",
    "originator_version",
    "timestamp",
    "actor",
    "actor_unit",
    "ref",
    "on",
}


def parse_cutoffs(as_of: str | None, known_at: str | None) -> tuple[date | None, datetime | None]:
    """`--as-of` and `--known-at` as typed (on the command line or in a form)."""
    day = moment = None
    if as_of is not None:
        try:
            day = parse_iso_date(as_of)
        except ValueError:
            raise DomainError(
                f"--as-of：“{printable(as_of)}”不是有效日期，应为 YYYY-MM-DD", field="as_of"
            ) from None
    if known_at is not None:
        try:
            moment = parse_timestamp(known_at)
        except (ValueError, OverflowError):
            raise DomainError(
                f"--known-at：“{printable(known_at)}”不是有效时间，应为 ISO 8601，"
                "如 2022-02-28T18:00",
                field="known_at",
            ) from None
    return day, moment


class CommandLines:
    """A file of JSON commands, one object a line, read a line at a time each time it is
    iterated (a retried batch reads it again): a command at a time, so a city's file is never
    held whole. Yields each non-blank line's command, or an Unreadable naming what is wrong;
    `numbers` gives the line numbers of items yielded."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        """Each non-blank line and its number."""
        self.stream.seek(0)
        for number, raw in enumerate(self.stream, start=1):
            if raw.strip():
                yield number, raw

    def numbers(self, indices: Iterable[int]) -> dict[int, int]:
        """The line number of each of these items: the file read again up to the last of
        them, as a number kept for every item would grow with the file."""
        wanted = set(indices)
        found: dict[int, int] = {}
        for index, (number, _) in enumerate(self._lines()):
            if len(found) == len(wanted):
                break
            if index in wanted:
                found[index] = number
        return found

    def __iter__(self) -> Iterator[Command | Unreadable]:
        for number, raw in self._lines():
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                yield Unreadable(DomainError(f"第{error.start + 1}个字节起不是 UTF-8 编码的文本"))
                continue
            if number == 1:  # a byte-order mark, as Windows Notepad writes
                text = text.removeprefix("\ufeff")
            yield _command(text.rstrip("\r\n"))  # the line's end is not part of its JSON


def _command(line: str) -> Command | Unreadable:
    data: Any = None
    try:
        data = _json_line(line)
        return parse_command(data)
    except DomainError as error:
        name = data.get("cmd", "") if isinstance(data, dict) else ""
        return Unreadable(error, name if isinstance(name, str) else "")


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise DomainError(f"字段 “{printable(key)}” 出现了两次，只能写一次", field=key)
        found[key] = value
    return found


# What Python's JSON parser says (json.decoder, by its message's first words), in Chinese.
JSON_PROBLEMS = {
    "Expecting value": "此处应有一个值（文本加双引号，数字、true、false、null 不加）",
    "Expecting property name enclosed in double quotes": "此处应为用双引号括起的字段名"
    "（最后一项后面不能有逗号）",
    "Expecting ',' delimiter": "此处缺少逗号",
    "Expecting ':' delimiter": "字段名后缺少冒号",
    "Unterminated string": "文本缺少结尾的双引号",
    "Invalid control character": "文本中有控制字符（换行、制表符应写作 \\n、\\t）",
    "Invalid \\escape": '无效的转义（反斜杠后只能是 " \\ / b f n r t u）',
    "Invalid \\uXXXX escape": "无效的 \\u 转义（应为 \\u 加四位十六进制数）",
    "Extra data": "一个对象结束后还有多余内容（一行只能写一条命令）",
    "Illegal trailing comma": "最后一项后面不能有逗号",
}


def _json_problem(message: str) -> str:
    for start, chinese in JSON_PROBLEMS.items():
        if message.startswith(start):
            return chinese
    return "格式不对"


def _json_line(line: str) -> Any:
    """One line's JSON: numbers with a fraction or exponent as Decimal (exact), a key given
    twice refused (the last one would silently win)."""
    try:
        return json.loads(line, parse_float=Decimal, object_pairs_hook=_no_repeated_keys)
    except json.JSONDecodeError as error:
        raise DomainError(
            f"不是有效的 JSON（第{error.colno}列：{_json_problem(error.msg)}）"
        ) from None
    except RecursionError:
        raise DomainError("JSON 嵌套层数过多") from None
    except ValueError:  # Python refuses integers of more than 4300 digits
        raise DomainError("数字位数过多") from None


def shown_value(field_name: str, value: Any, *, unmasked: bool) -> str:
    """A field's value as one line of text: lists joined, amounts with their unit, personal
    data masked unless `unmasked`."""
    if isinstance(value, tuple | list):
        return "、".join(str(v) for v in value)
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, Decimal) and field_name.endswith(("_m2", "_yuan")):
        return show_amount(field_name, value)
    # One event a line: a line break inside a note is shown as \n.
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return text if unmasked else masked(field_name, text)


def history_entry(event: e.Event, *, unmasked: bool) -> HistoryEntry:
    fields = event.model_dump(exclude_defaults=True, exclude=HIDDEN_IN_HISTORY, warnings=False)
    return HistoryEntry(
        on=cast(Any, event).on,
        recorded_at=event.timestamp.astimezone(CHINA),
        actor=event.actor + (f"（{event.actor_unit}）" if event.actor_unit else ""),
        title=event.TITLE,
        fields=tuple((label(k), shown_value(k, v, unmasked=unmasked)) for k, v in fields.items()),
        reason=str(fields.get("reason", "")),
    )


REFILL_BY_REBUILD = 50_000  # events: below this, catching up costs less than starting a rebuild


class Session:
    """One actor's use of one store."""

    def __init__(self, db: str | None, actor: str, *, campaign_file: Path | None = None) -> None:
        self.ledger = LandLedger(db, campaign_file=campaign_file)
        self.db = db
        self.actor = actor
        self._model: ReadModel | None = None
        self._pages: LedgerPages | None = None
        # The dashboard asks from worker threads; the read model's connection is one.
        self._lock = threading.RLock()

    def explain(self, error: BaseException) -> str:
        """What went wrong, in Chinese, as the user can act on it: a rule's message; a fault of
        the store named (read-only, locked, disk full, server gone) as the command line names
        it; else the error itself."""
        if isinstance(error, DomainError):
            return error.message
        if is_database_error(error):
            return failure_message(self.db, error)
        return f"{type(error).__name__}：{error}"

    @staticmethod
    def new_key() -> str:
        """A new encryption key for LANDLEDGER_CIPHER_KEY (no store is opened)."""
        return new_cipher_key()

    def close(self) -> None:
        for model in (self._model, self._pages.source if self._pages else None):
            if isinstance(model, ReadModel):
                model.close()
        self.ledger.close()

    # Who ------------------------------------------------------------------------------------

    def role(self) -> str:
        """The actor's role, or "" while no staff are registered (anyone may do anything)."""
        member = self.ledger.campaign().staff.get(self.actor)
        return member.role if member else ""

    def check_unmasking(self, unmasked: bool) -> None:
        if unmasked:
            self.ledger.campaign().check_unmasking(self.actor)

    # The read model -------------------------------------------------------------------------

    @property
    def model(self) -> ReadModel:
        if self._model is None:
            self._model = ReadModel(self.ledger)
        return self._model

    def catch_up(self) -> int:
        """Fold what was recorded since the read model's position, once the hash chain of
        those events checks: a forged event is never folded into the figures."""
        with self._lock:
            position = self.model.position()
            last = self.ledger.last_position()  # what is checked and then folded
            if position == 0 and last > REFILL_BY_REBUILD:
                # An empty read model (a new layout after an upgrade, or a store recorded
                # without one): a rebuild folds in parallel, 10-15 times faster than catching up.
                return self.rebuild()
            if position < last:
                check = self.ledger.verify_chain(after=position)
                if not check.ok:
                    problem = audit.describe(self.ledger, cast(chain.Problem, check.problem), "")[0]
                    raise DomainError(
                        f"新记录的事件未通过完整性核验，读模型未更新：{problem}。"
                        "请运行 landledger verify 查看，并交管理员核查"
                    )
            return self.model.catch_up(upto=last)

    def last_position(self) -> int:
        """Moves whenever anyone records: what the dashboard polls to refresh itself."""
        return self.ledger.last_position()

    def rebuild(self, progress: Progress | None = None) -> int:
        """Fold the whole log again, after checking its hash chain: a tampered store is refused
        (the read model is kept as it was) rather than serving forged figures."""
        with self._lock:
            check = self.verify()
            if not check.ok:
                raise DomainError(
                    f"拒绝重建：事件日志未通过完整性核验，读模型保持原样。{check.difference}。"
                    "请运行 landledger verify 查看，并交管理员核查"
                )
            return self.model.rebuild(progress)

    # Audit ----------------------------------------------------------------------------------

    def verify(
        self,
        fingerprint: str | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> VerifyResult:
        """Recompute the hash chain from the stored events and compare it with the stored
        links and, given one (`N:HASH` from an earlier export), with that fingerprint.
        `progress(done, total)` is called every page; `cancel` set from another thread stops
        it (DomainError "已取消核验")."""
        return audit.verify(self.ledger, fingerprint, progress, cancel)

    # Writing --------------------------------------------------------------------------------

    def record(self, commands: Iterable[Command | Unreadable], *, once: bool = False) -> Written:
        """All of the commands or none (a list, or CommandLines: see LandLedger.record); then
        the read model catches up, so the writer sees its own write at once. A failure there
        does not undo or hide the committed write. `once`: this process records nothing
        after, so the batch's case states are not kept for a next one (a city's file: their
        memory goes to the catch-up instead)."""
        recorded = self.ledger.record(commands, self.actor, remember=not once)
        written = Written(recorded)
        try:
            self.catch_up()
        except Exception as error:  # the write is committed whatever happens here
            written.read_model_error = (
                "以上记录已写入；读模型（台账、统计）暂未更新，将在下次查询时自动补上"
                f"（{printable(str(error))}）"
            )
        return written

    def left_out(self) -> list[Fact]:
        """Events the read side met and left out since last asked (recorded before a bound
        refused their values: projections.ledger.fold); the log keeps them."""
        if self._model is None:
            return []
        found = list(self._model.skipped)
        self._model.skipped.clear()
        return found

    def plan_import(self, path: str | Path) -> "Report":
        from exports.importer import plan_import  # openpyxl: loaded when a sheet is read

        return plan_import(self.ledger, path, self.actor)

    def apply_import(self, report: "Report") -> ImportResult:
        """Append a checked sheet's commands in one all-or-nothing batch."""
        result = ImportResult(report)
        if report.errors or not report.commands:
            return result
        try:
            written = self.record(report.commands)
        except CommandRejected as error:
            for rejected in error.rejections:
                row = report.command_rows[rejected.index]
                report.errors.append(f"第{row}行 {rejected.error.message}")
            report.commands = []
            return result
        result.written = True
        result.events = report.events = written.recorded.events
        return result

    # Reading --------------------------------------------------------------------------------

    def reader(self) -> Reader:
        with self._lock:
            self.catch_up()
            return Reader(self.ledger, self.model)

    def stats(
        self, *, by: str = "township", as_of: date | None = None, known_at: datetime | None = None
    ) -> dict[str, Any]:
        with self._lock:
            return self.reader().stats(by=by, as_of=as_of, known_at=known_at)

    def fingerprint(self) -> str:
        """The store's fingerprint N:HASH (the count of events and the hash chain's head)."""
        return self.ledger.fingerprint()

    def alerts(self, *, listed: int = 20, today: date | None = None) -> list[Alert]:
        with self._lock:
            self.catch_up()
            campaign = self.ledger.campaign()
            return self.model.alerts(today or china_today(), campaign, listed=listed)

    def watch_list(self, *, listed: int = 20, today: date | None = None) -> list[Alert]:
        """What the dashboard lists as alerts: DESIGN's alerts, then the cases under 挂牌督办."""
        found = self.alerts(listed=listed, today=today)
        supervised = LedgerQuery(alert="supervised", today=today)
        with self._lock:
            count = ledger_query.count(self.model, supervised)
            first = ledger_query.refs(self.model, supervised, 0, listed)
        return [*found, Alert("supervised", "挂牌督办案件", count, first)]

    def ledger_at(self, as_of: date | None, known_at: datetime | None) -> list[LedgerRow]:
        """The ledger as it was at a cutoff (replayed from the log), in the ledger's order."""
        with self._lock:
            return list(self.reader().ledger(as_of=as_of, known_at=known_at))

    def changed_cases(
        self, first: tuple[date | None, datetime | None], then: tuple[date | None, datetime | None]
    ) -> list[tuple[str, str, str]]:
        """The cases whose ledger row differs between two cutoffs: (ref, state then, state
        after; "" where the case was not yet in the ledger), in the ledger's order."""
        before = {row.case.ref: row for row in self.ledger_at(*first)}
        after = {row.case.ref: row for row in self.ledger_at(*then)}
        changed = []
        for ref in [*after, *(r for r in before if r not in after)]:
            old, new = before.get(ref), after.get(ref)
            if old is None or new is None or old.data != new.data:
                changed.append((ref, old.state if old else "", new.state if new else ""))
        return changed

    def history(self, ref: str, *, unmasked: bool = False) -> list[HistoryEntry]:
        self.check_unmasking(unmasked)
        return [history_entry(event, unmasked=unmasked) for event in self.ledger.history(ref)]

    def found_per_week(self, until: date | None = None) -> list[tuple[date, int]]:
        with self._lock:
            self.catch_up()
            return found_per_week(self.model.db, until)

    def ledger_pages(self) -> LedgerPages:
        """The ledger as the dashboard's table reads it: filtered, sorted, a page at a time,
        on a connection of its own (the table reads from its own worker thread)."""
        if self._pages is None:
            with self._lock:
                self.catch_up()
                self._pages = LedgerPages(ReadModel(self.ledger))
        return self._pages

    def rows(self, refs: Iterable[str]) -> list[LedgerRow]:
        """The current ledger rows of these cases, in the ledger's order."""
        with self._lock:
            return self.reader().rows(refs)

    def case_alerts(self, row: LedgerRow, cutoff: date) -> tuple[str, ...]:
        campaign = self.ledger.campaign()
        return row_alerts(row, cutoff, campaign.config, dict(campaign.deadlines))

    def event_log(
        self,
        *,
        actor: str = "",
        title: str = "",
        since: date | None = None,
        until: date | None = None,
        limit: int = 500,
    ) -> list[LogEntry]:
        """The log in recorded order, for an auditor: the first `limit` events by this actor,
        of this kind (its Chinese name), with business dates in this range; personal data
        masked."""
        found: list[LogEntry] = []
        for notification in self.ledger.notifications():
            event = cast(e.Event, self.ledger.mapper.to_domain_event(notification))
            on = getattr(event, "on", None)
            if (actor and event.actor != actor) or (title and title != event.TITLE):
                continue
            if on is None or (since and on < since) or (until and on > until):
                continue
            entry = history_entry(event, unmasked=False)
            found.append(LogEntry(notification.id, getattr(event, "ref", ""), entry))
            if len(found) >= limit:
                break
        return found

    def case_row(self, ref: str) -> LedgerRow:
        with self._lock:
            rows = self.reader().rows([ref])
        if not rows:
            raise DomainError(f"编号 “{ref}” 不存在", field="ref")
        return rows[0]

    # Exports --------------------------------------------------------------------------------

    def export(
        self,
        kind: str,
        out: str,
        *,
        as_of: date | None = None,
        known_at: datetime | None = None,
        by: str = "township",
        unmasked: bool = False,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> Exported:
        """Write one of the tables (or the event log) for a cutoff; `cancel` set from another
        thread stops it and leaves no file."""
        if kind not in EXPORT_TITLES:
            raise DomainError(f"没有“{kind}”这种导出，可选：{'、'.join(EXPORT_TITLES)}")
        self.check_unmasking(unmasked)
        folder = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(folder):
            raise DomainError(f"--out：目录 {folder} 不存在", field="out")
        if kind != "events" and not out.lower().endswith(".xlsx"):
            # A .xls name on an xlsx file makes Excel and WPS warn or refuse: say it, do not guess.
            stem = os.path.splitext(out)[0]
            raise DomainError(
                f"--out：{out} 不是 .xlsx 文件名；导出的表格是 xlsx 格式，请改为 {stem}.xlsx",
                field="out",
            )

        def report(done: int, total: int) -> None:
            if cancel is not None and cancel.is_set():
                raise Cancelled
            if progress is not None:
                progress(done, total)

        with self._lock:
            reader = self.reader()
            mark = stamp(self.ledger, as_of, known_at)
            try:
                count = _EXPORTS[kind](self, reader, out, mark, by, unmasked, report)
            except OSError as error:
                raise DomainError(f"无法写入 {out}：{os_reason(error)}，未留下文件") from None
        return Exported(kind, out, count, mark)


def _export_table2(
    session: Session, reader: Reader, out: str, mark: Stamp, by: str, _: bool, __: Progress
) -> int:
    from exports.table2 import contact_for, write_table2

    campaign = session.ledger.campaign()
    stats = reader.stats(by=by, as_of=mark.as_of, known_at=mark.known_at)
    write_table2(
        out, stats, config=campaign.config, contact=contact_for(campaign.contacts), stamp=mark
    )
    return len(stats["groups"])


def _export_ledger(
    session: Session, reader: Reader, out: str, mark: Stamp, _: str, unmasked: bool, p: Progress
) -> int:
    from exports.ledger import write_ledger

    rows = reader.ledger(as_of=mark.as_of, known_at=mark.known_at)
    config = session.ledger.campaign().config
    return write_ledger(out, rows, config=config, stamp=mark, unmasked=unmasked, progress=p)


def _export_problems(
    session: Session, reader: Reader, out: str, mark: Stamp, by: str, _: bool, __: Progress
) -> int:
    from exports.problem_sheets import write_problems
    from projections.problems import problems

    campaign = session.ledger.campaign()
    rows = reader.ledger(as_of=mark.as_of, known_at=mark.known_at)
    items = problems(rows, mark.cutoff, campaign.config, dict(campaign.deadlines))
    return write_problems(out, items, config=campaign.config, stamp=mark, by=by)


def _export_contacts(
    session: Session, _: Reader, out: str, mark: Stamp, __: str, unmasked: bool, ___: Progress
) -> int:
    from exports.problem_sheets import write_contacts

    campaign = session.ledger.campaign()
    return write_contacts(
        out, campaign.contacts, config=campaign.config, stamp=mark, unmasked=unmasked
    )


def _export_events(
    session: Session, _: Reader, out: str, mark: Stamp, __: str, unmasked: bool, p: Progress
) -> int:
    from exports.events import write_events

    return write_events(out, session.ledger, stamp=mark, unmasked=unmasked, progress=p)


def _export_template(
    session: Session, _: Reader, out: str, mark: Stamp, __: str, ___: bool, ____: Progress
) -> int:
    from exports.ledger import example_row, write_template

    config = session.ledger.campaign().config
    write_template(out, config=config, stamp=mark, example=example_row(config, mark.cutoff))
    return 1


_EXPORTS: dict[str, Callable[[Session, Reader, str, Stamp, str, bool, Progress], int]] = {
    "table2": _export_table2,
    "ledger": _export_ledger,
    "problems": _export_problems,
    "contacts": _export_contacts,
    "events": _export_events,
    "template": _export_template,
}
