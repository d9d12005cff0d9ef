"""`landledger`: the command line. Its options, output and exit codes are a stable contract.

Exit 0 on success; 1 on rejected input (reason in Chinese on standard error, nothing written);
2 only for command-line misuse.
"""

import argparse
import gc
import getpass
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, NoReturn, cast

from domain.campaign import load_config
from domain.commands import parse_command
from domain.errors import DomainError, os_reason
from domain.values import china_today, printable
from service.demo import demo_commands
from service.ledger import CommandRejected
from service.session import (
    EXPORT_TITLES,
    CommandLines,
    Session,
    parse_cutoffs,
    without_cycle_collector,
)
from storage.store import default_db_path, failure_message, is_database_error

DEMO_CASES = 2000
DEMO_BATCH = 20_000
GENERATED_LISTED = 20  # refs given to new sites that `record` names
DEMO_AS_OF = date(2022, 3, 20)  # inside the campaign: before 集中整治's deadline of 03-31


# argparse's own messages, in Chinese. argparse looks each up through gettext's `_` when it
# prints it, and no Chinese catalogue ships with Python: this module's table stands in.
ARGPARSE_MESSAGES = {
    "usage: ": "用法：",
    "positional arguments": "位置参数",
    "options": "选项",
    "show this help message and exit": "显示此帮助并退出",
    "argument %(argument_name)s: %(message)s": "参数 %(argument_name)s：%(message)s",
    "invalid choice: %(value)r (choose from %(choices)s)": (
        "无效的选择 %(value)r（可选：%(choices)s）"
    ),
    "invalid %(type)s value: %(value)r": "%(value)r 不是%(type)s",
    "the following arguments are required: %s": "缺少必需的参数：%s",
    "unrecognized arguments: %s": "无法识别的参数：%s",
    "expected one argument": "需要一个值",
    "ambiguous option: %(option)s could match %(matches)s": (
        "选项 %(option)s 有歧义，可能是 %(matches)s"
    ),
    "ignored explicit argument %r": "此选项不接受值 %r",
    "not allowed with argument %s": "不能与参数 %s 同时使用",
    "one of the arguments %s is required": "参数 %s 必须给出一个",
    "unexpected option string: %s": "意外的选项 %s",
}
vars(argparse)["_"] = lambda message: ARGPARSE_MESSAGES.get(message, message)


def whole_number(text: str) -> int:
    return int(text)


whole_number.__name__ = "整数"  # how argparse names the type in its message


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}：命令行用法错误：{message}\n")


def build_parser() -> Parser:
    parser = Parser(prog="landledger", description="违法用地专项行动台账（事件溯源）")
    parser.add_argument(
        "--db", help="数据库：SQLite 文件路径或 postgresql:// 地址（或环境变量 LANDLEDGER_DB）"
    )
    parser.add_argument("--actor", help="操作人工号（或环境变量 LANDLEDGER_ACTOR）")
    parser.add_argument(
        "--campaign",
        help="新库使用的专项行动数据文件（TOML，或环境变量 LANDLEDGER_CAMPAIGN）；默认上党区",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    tui = sub.add_parser("tui", help="终端界面（默认）")
    tui.add_argument("--as-of", help="以此业务日期为截止打开 YYYY-MM-DD（默认今天）")
    demo = sub.add_parser("demo", help="生成演示库并打开终端界面")
    demo.add_argument("--cases", type=whole_number, default=DEMO_CASES, help="案件数（默认 2000）")
    record = sub.add_parser("record", help="记录 JSON 命令（每行一条，全部成功或全部不写入）")
    record.add_argument("--file", help="命令文件；不给则读标准输入")
    stats = sub.add_parser("stats", help="统计")
    stats.add_argument("--json", action="store_true", help="输出 JSON")
    stats.add_argument("--as-of", help="业务日期截止 YYYY-MM-DD")
    stats.add_argument("--known-at", help="记录时间截止（ISO 8601，无时区视为北京时间）")
    stats.add_argument(
        "--by", default="township", choices=["township", "unit", "violation_type", "month"]
    )
    sub.add_parser("rebuild", help="从事件日志重建全部读模型（台账、统计）")
    verify = sub.add_parser("verify", help="核验事件日志的哈希链（可对照导出时的数据指纹）")
    verify.add_argument("--fingerprint", help="早先导出上的数据指纹 N:HASH")
    backup = sub.add_parser("backup", help="备份 SQLite 库到一个文件（可在他人记录时进行）")
    backup.add_argument("file", help="备份文件（已存在则拒绝，除非 --force）")
    backup.add_argument("--force", action="store_true", help="覆盖已存在的备份文件")
    sub.add_parser("keygen", help="生成一个新的加密密钥（供 LANDLEDGER_CIPHER_KEY 使用）")
    alerts = sub.add_parser("alerts", help="预警：逾期、达标未移送、立案超期未处罚、阶段期限")
    alerts.add_argument("--json", action="store_true", help="输出 JSON")
    history = sub.add_parser("history", help="案件的全部事件")
    history.add_argument("ref")
    history.add_argument("--unmasked", action="store_true", help="显示完整证件号码和电话")
    export = sub.add_parser("export", help="导出表格：附件2、台账、问题清单、附件1、事件日志、模板")
    export.add_argument("kind", choices=list(EXPORT_TITLES), help="导出哪张表")
    export.add_argument("--out", required=True, help="输出文件（xlsx；events 为 .jsonl）")
    export.add_argument("--as-of", help="业务日期截止 YYYY-MM-DD（默认今天）")
    export.add_argument("--known-at", help="记录时间截止（ISO 8601，无时区视为北京时间）")
    export.add_argument(
        "--by", default="township", choices=["township", "unit"], help="按乡镇或责任单位分组"
    )
    export.add_argument("--unmasked", action="store_true", help="不遮蔽证件号码和电话")
    imported = sub.add_parser("import", help="导入台账表格（整表校验，全部成功或全部不写入）")
    imported.add_argument("file", help="xlsx 或 ods 文件（台账格式，见 export template）")
    imported.add_argument("--dry-run", action="store_true", help="只校验并报告，不写入")
    return parser


def safe_output() -> None:
    """A terminal (or pipe) whose encoding cannot show a character (GBK has no ㎡ variant of
    every sign, ASCII has no Chinese) gets an escape for it, never a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and (stream.encoding or "").lower() not in ("utf-8", "utf8"):
            reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    safe_output()
    args = build_parser().parse_args(argv)
    try:
        with without_cycle_collector():
            return run(args)
    except DomainError as error:
        print(f"错误：{printable(error.message)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `landledger stats --json | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:
        if not is_database_error(error):
            raise
        # Locked too long, read-only, disk full, server gone: say which, in Chinese.
        print(f"错误：{printable(failure_message(chosen_db(args), error))}", file=sys.stderr)
        return 1


def chosen_db(args: argparse.Namespace) -> str | None:
    """The store `--db` names, else LANDLEDGER_DB's, else None (the default store). An empty
    `--db ''` is refused rather than taken for the default."""
    if args.db is None:
        return os.environ.get("LANDLEDGER_DB") or None
    if not args.db.strip():
        raise DomainError("--db：不能为空，应为 SQLite 文件路径或 postgresql:// 地址", field="db")
    return str(args.db)


def run(args: argparse.Namespace) -> int:
    command = args.command or "tui"
    db = chosen_db(args)
    actor = args.actor or os.environ.get("LANDLEDGER_ACTOR") or getpass.getuser()
    # Another district is another data file; it defines the campaign of a new store only.
    given = "--campaign" if args.campaign else "LANDLEDGER_CAMPAIGN"
    chosen = args.campaign or os.environ.get("LANDLEDGER_CAMPAIGN")
    campaign = Path(chosen) if chosen else None
    if command == "keygen":  # opens no store
        return keygen()
    if command == "backup":  # reads the file as it is: opening it as a store could write
        return backup(db, args.file, args.force)
    if command == "demo":
        return demo(db, actor, (given, campaign), getattr(args, "cases", DEMO_CASES))
    as_of, _ = (
        parse_cutoffs(getattr(args, "as_of", None), None) if command == "tui" else (None, None)
    )
    session = Session(db, actor, campaign_file=campaign)
    warn_campaign_ignored(session, given, campaign)
    if command == "tui":
        return dashboard(session, as_of)
    try:
        return COMMANDS[command](session, args)
    finally:
        session.close()


def warn_campaign_ignored(session: Session, given: str, campaign: Path | None) -> None:
    """A store keeps the campaign it began with: say so when another data file is given."""
    stored = session.ledger.stored_campaign() if campaign else None
    if stored is None:
        return
    try:
        if load_config(cast(Path, campaign)) == stored.config:
            return
    except DomainError:
        pass  # a file that cannot be read is ignored all the same
    print(
        f"提示：此库已有专项行动“{printable(stored.config.name)}”（建库时确定），"
        f"{given} 给出的 {printable(str(campaign))} 被忽略",
        file=sys.stderr,
    )


def record(session: Session, args: argparse.Namespace) -> int:
    try:
        with command_file(args.file) as stream:
            lines = CommandLines(stream)
            try:
                written = session.record(lines, once=True)
            except CommandRejected as error:
                numbers = lines.numbers(r.index for r in error.rejections)
                refused = [
                    f"第{numbers[r.index]}行{' ' + r.command if r.command else ''}："
                    f"{r.error.message}"
                    for r in error.rejections
                ]
                if error.count > len(refused):
                    refused.append(f"还有 {error.count - len(refused)} 行错误未列出")
                if len(refused) > 1:
                    refused.append(f"共 {error.count} 行有错误")
                return refuse_record(refused)
    except DomainError as error:
        return refuse_record([error.message])
    result = written.recorded
    print(
        f"已记录 {result.commands} 条命令（{result.events} 个事件），"
        f"涉及 {result.cases} 个案件，其中新发现 {result.new_cases} 个",
        flush=True,
    )
    if result.generated:
        more = f" 等 {result.generated} 个" if result.generated > GENERATED_LISTED else ""
        print(f"新编号：{'、'.join(result.generated_refs[:GENERATED_LISTED])}{more}")
    if written.read_model_error:
        print(f"警告：{written.read_model_error}", file=sys.stderr)
    warn_left_out(session)
    return 0


def refuse_record(lines: list[str]) -> int:
    """The one place a refused `record` is told: each problem on a line of its own, the last
    one saying that nothing was written."""
    lines[-1] += "（全部未写入）"
    for line in lines:
        print(f"错误：{printable(line)}", file=sys.stderr)
    return 1


@contextmanager
def command_file(path: str | None) -> Iterator[BinaryIO]:
    """The commands' file, or standard input copied to a temporary file: a batch retried
    after a conflict with another session reads its commands again."""
    if path is not None:
        try:
            stream = open(path, "rb")  # noqa: SIM115 (closed below; an error here is the file's)
        except OSError as error:
            raise DomainError(f"无法读取命令文件 {path}：{os_reason(error)}") from None
        with stream:
            yield stream
        return
    with tempfile.TemporaryFile() as spool:
        source = getattr(sys.stdin, "buffer", None)
        if source is not None:
            shutil.copyfileobj(source, spool)
        else:  # a text stream (the tests' StringIO)
            for text in sys.stdin:
                spool.write(text.encode("utf-8", "surrogateescape"))
        yield spool


def warn_left_out(session: Session) -> None:
    """Events the read side left out as it caught up (projections.ledger.fold): said once, when
    they are first met; the log keeps them, `history` and the event log show them."""
    skipped = session.left_out()
    for fact in skipped[:5]:
        print(
            f"警告：第 {fact.position} 个事件（{printable(str(fact.data.get('ref', '')))}，"
            f"{fact.kind}）的数值超出上限（记录于检查上限之前），未计入台账和统计",
            file=sys.stderr,
        )
    if len(skipped) > 5:
        print(f"警告：另有 {len(skipped) - 5} 个这样的事件", file=sys.stderr)


def rebuild(session: Session, _: argparse.Namespace) -> int:
    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            filled = 30 * done // max(total, 1)
            bar = "█" * filled + "░" * (30 - filled)
            print(f"\r重建读模型 {bar} {done}/{total}", end="", file=sys.stderr, flush=True)

    started = time.perf_counter()
    total = session.rebuild(progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"已重建读模型：{total} 个事件，用时 {time.perf_counter() - started:.1f} 秒")
    return 0


def verify(session: Session, args: argparse.Namespace) -> int:
    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            filled = 30 * done // max(total, 1)
            bar = "█" * filled + "░" * (30 - filled)
            print(f"\r核验哈希链 {bar} {done}/{total}", end="", file=sys.stderr, flush=True)

    started = time.perf_counter()
    try:
        result = session.verify(args.fingerprint, progress)
    finally:
        if sys.stderr.isatty():
            print(file=sys.stderr)
    seconds = time.perf_counter() - started
    if result.linked_on:
        print(f"提示：{result.linked_on}", file=sys.stderr)
    if not result.ok:
        print(f"错误：核验未通过：{result.difference}", file=sys.stderr)
        return 1
    print(f"核验通过：{result.checked} 个事件，哈希链完整，用时 {seconds:.1f} 秒")
    if result.fingerprint_ok:
        count = args.fingerprint.split(":")[0]
        print(f"与数据指纹 {args.fingerprint} 一致：其前 {count} 个事件未被改动")
    print(f"数据指纹 {result.fingerprint}")
    return 0


def backup(db: str | None, out: str, force: bool) -> int:
    from service.backup import backup as backup_store  # what no other command needs

    done = backup_store(db, out, force=force)
    print(
        printable(
            f"已备份 {done.source} → {done.target}：{done.events} 个事件，"
            f"{done.size / 1_000_000:.1f} MB；可用 landledger --db {done.target} verify 核验"
        )
    )
    return 0


def keygen() -> int:
    print(Session.new_key())
    print(
        "请妥善保管此密钥（丢失则无法读取数据）；建新库前设置：export LANDLEDGER_CIPHER_KEY=…",
        file=sys.stderr,
    )
    return 0


def alerts(session: Session, args: argparse.Namespace) -> int:
    found = session.alerts(listed=20 if args.json else 5)
    warn_left_out(session)
    if args.json:
        print(json.dumps([vars(alert) for alert in found], ensure_ascii=False))
        return 0
    for alert in found:
        more = "……" if alert.count > len(alert.first) else ""
        listed = f"：{'、'.join(alert.first)}{more}" if alert.first else ""
        print(printable(f"{alert.title}　{alert.count} 项{listed}"))
    return 0


def stats(session: Session, args: argparse.Namespace) -> int:
    as_of, known_at = parse_cutoffs(args.as_of, args.known_at)
    fingerprint = session.fingerprint() if args.json else ""  # read before the figures
    result = session.stats(by=args.by, as_of=as_of, known_at=known_at)
    warn_left_out(session)
    if args.json:
        print(json.dumps({**result, "fingerprint": fingerprint}, ensure_ascii=False))
    else:
        print_stats(result)
    return 0


STATS_COLUMNS = (
    ("found", "发现"),
    ("violations", "违法"),
    ("filed", "立案"),
    ("rectified", "整改到位"),
    ("closed_out", "已销号"),
    ("open", "未销号"),
    ("overdue", "逾期"),
    ("over_crime_threshold_unreferred", "达标未移送"),
    ("rectification_rate", "整改率"),
)


def print_stats(result: dict[str, Any]) -> None:
    cutoff = result["as_of"] or china_today().isoformat()  # no --as-of: today
    print(
        f"截至 {cutoff}" + (f"（记录于 {result['known_at']} 之前）" if result["known_at"] else "")
    )
    header = ["分组", *(name for _, name in STATS_COLUMNS)]
    lines = [header]
    for group in [*result["groups"], {"key": "合计", **result["total"]}]:
        cells = [str(group["key"])]
        for key, _ in STATS_COLUMNS:
            value = group[key]
            cells.append(
                f"{Decimal(value) * 100:.1f}%" if key == "rectification_rate" else str(value)
            )
        lines.append(cells)
    widths = [max(_width(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(_pad(cell, widths[i], right=i > 0) for i, cell in enumerate(line)))


def _width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


def _pad(text: str, width: int, *, right: bool) -> str:
    gap = " " * (width - _width(text))
    return gap + text if right else text + gap


def history(session: Session, args: argparse.Namespace) -> int:
    for entry in session.history(args.ref, unmasked=args.unmasked):
        shown = " ".join(f"{name}={value}" for name, value in entry.fields)
        recorded = entry.recorded_at.isoformat(timespec="seconds")
        print(printable(f"{entry.on}  {recorded}  {entry.actor}  {entry.title}  {shown}".rstrip()))
    return 0


class ProgressLine:
    """A one-line progress report on standard error, only when it is a terminal."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.shown = False
        self.started = time.monotonic()
        self.enabled = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        part = done / total if total else 1.0
        bar = "#" * int(part * 30)
        seconds = time.monotonic() - self.started
        sys.stderr.write(f"\r导出{self.title} [{bar:<30}] {done}/{total} {seconds:.0f}s")
        sys.stderr.flush()
        self.shown = True

    def end(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


EXPORT_UNITS = {
    "table2": "组",
    "events": "个事件",
    "contacts": "个单位已报送",
    "template": "个示例行",
}


def export(session: Session, args: argparse.Namespace) -> int:
    as_of, known_at = parse_cutoffs(args.as_of, args.known_at)
    title = EXPORT_TITLES[args.kind]
    progress = ProgressLine(title)
    try:
        done = session.export(
            args.kind,
            args.out,
            as_of=as_of,
            known_at=known_at,
            by=args.by,
            unmasked=args.unmasked,
            progress=progress,
        )
    finally:
        progress.end()
    unit = EXPORT_UNITS.get(args.kind, "行")
    print(printable(f"已导出{title} → {done.path}：{done.count} {unit}；{done.stamp.line()}"))
    return 0


def import_sheet(session: Session, args: argparse.Namespace) -> int:
    path = args.file
    report = session.plan_import(path)
    if not report.errors and not args.dry_run:
        session.apply_import(report)
    for name in report.ignored_headers:
        print(f"提示：未识别的列“{printable(name)}”，未导入", file=sys.stderr)
    if report.errors:
        for line in report.errors:
            print(printable(line), file=sys.stderr)
        print(f"错误：{path} 有 {len(report.errors)} 处错误，全部未导入", file=sys.stderr)
        return 1
    verb = "试导入（未写入）：将" if args.dry_run else "已导入："
    events = len(report.commands) if args.dry_run else report.events
    print(
        f"{path} {verb}{report.added()}（{events} 个事件）；"
        f"已存在且相同 {len(report.same_rows)} 行"
        + (f"；跳过示例行 {report.examples} 行" if report.examples else "")
    )
    return 0


def demo(db: str | None, actor: str, campaign: tuple[str, Path | None], cases: int) -> int:
    """Record the demo campaign into a store (unless it has cases already), then open the
    dashboard on it at a date inside the campaign."""
    if cases < 1 or cases > 1_000_000:
        raise DomainError(f"--cases：应在 1 到 1000000 之间，而不是 {cases}")
    if db is None:  # the default location's folder is made, as for the default store
        default_db_path().parent.mkdir(parents=True, exist_ok=True)
    path = db or str(default_db_path().with_name("demo.db"))
    session = Session(path, actor, campaign_file=campaign[1])
    warn_campaign_ignored(session, *campaign)
    if session.ledger.ledger_recorder.count_refs() == 0:
        config = session.ledger.campaign().config
        commands = [parse_command(c) for c in demo_commands(config, cases)]
        for start in range(0, len(commands), DEMO_BATCH):
            session.record(commands[start : start + DEMO_BATCH])
        print(f"演示库 {path}：已记录 {len(commands)} 条命令，{cases} 个案件", file=sys.stderr)
    else:
        print(f"演示库 {path} 已有案件，直接打开", file=sys.stderr)
    return dashboard(session, DEMO_AS_OF)


def dashboard(session: Session, as_of: date | None) -> int:
    """The dashboard on a terminal; elsewhere (a script, CI) the overview's figures as text."""
    try:
        if not (sys.stdout.isatty() and sys.stdin.isatty()):
            print_overview(session, as_of)
            return 0
        from tui.app import LandLedgerApp

        gc.enable()  # the dashboard runs for days: it keeps the cycle collector
        LandLedgerApp(session, as_of=as_of).run()
        return 0
    finally:
        session.close()


def print_overview(session: Session, as_of: date | None) -> None:
    result = session.stats(as_of=as_of)
    print_stats(result)
    for alert in session.alerts(listed=0, today=as_of):
        print(f"{alert.title}　{alert.count} 项")


COMMANDS: dict[str, Callable[[Session, argparse.Namespace], int]] = {
    "record": record,
    "stats": stats,
    "history": history,
    "rebuild": rebuild,
    "verify": verify,
    "alerts": alerts,
    "export": export,
    "import": import_sheet,
}


if __name__ == "__main__":
    sys.exit(main())
