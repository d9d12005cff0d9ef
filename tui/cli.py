"""`landledger`: the command line. Its options, output and exit codes are a stable contract.

Exit 0 on success; 1 on rejected input (reason in Chinese on standard error, nothing written);
2 only for command-line misuse.
"""

import argparse
import gc
import getpass
import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn, TextIO

from eventsourcing.persistence import PersistenceError

from domain.commands import Command, parse_command
from domain.errors import DomainError
from domain.service import CommandRejected, LandLedger
from domain.values import (
    CHINA,
    china_today,
    label,
    mask_id,
    mask_phone,
    parse_iso_date,
    parse_timestamp,
    printable,
    show_amount,
)
from tui import spreadsheets


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
    sub.add_parser("tui", help="终端界面（默认）")
    sub.add_parser("demo", help="生成演示库并显示统计")
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
    alerts = sub.add_parser("alerts", help="预警：逾期、达标未移送、立案超期未处罚、阶段期限")
    alerts.add_argument("--json", action="store_true", help="输出 JSON")
    history = sub.add_parser("history", help="案件的全部事件")
    history.add_argument("ref")
    history.add_argument("--unmasked", action="store_true", help="显示完整证件号码和电话")
    spreadsheets.add_parsers(sub)
    return parser


@contextmanager
def without_cycle_collector() -> Iterator[None]:
    """A command runs once and exits, making millions of objects but hardly any reference
    cycles (a city's append: 12 collections freed nothing; its rebuild: 756 freed 5 objects).
    Each collection still visited the young objects and the old ones they point to, a fifth of
    a province's append (bench/run.py): so a command does without the cycle collector; plain
    reference counting frees what it makes."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()  # for callers that go on (the tests call main in their own process)


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
    except (PersistenceError, sqlite3.Error) as error:  # locked too long, server gone, disk full
        print(f"错误：数据库暂时无法访问，请稍后重试（{printable(str(error))}）", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `landledger stats --json | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def run(args: argparse.Namespace) -> int:
    command = args.command or "tui"
    db = args.db or os.environ.get("LANDLEDGER_DB")
    actor = args.actor or os.environ.get("LANDLEDGER_ACTOR") or getpass.getuser()
    # Another district is another data file; it defines the campaign of a new store only.
    chosen = args.campaign or os.environ.get("LANDLEDGER_CAMPAIGN")
    campaign = Path(chosen) if chosen else None
    if command == "demo":
        from tui.demo import run_demo

        return run_demo(db, actor, campaign)
    if command == "tui":
        print("终端界面尚在开发中；请使用 record、stats、history 等命令。", file=sys.stderr)
        return 1
    app = LandLedger(db, campaign_file=campaign)
    if command == "record":
        return record(app, args.file, actor)
    if command == "stats":
        return stats(app, args)
    if command == "history":
        if args.unmasked:
            app.campaign().check_unmasking(actor)
        return history(app, args.ref, unmasked=args.unmasked)
    if command == "rebuild":
        return rebuild(app)
    if command == "alerts":
        return alerts(app, as_json=args.json)
    if command in spreadsheets.COMMANDS:
        if getattr(args, "unmasked", False):
            app.campaign().check_unmasking(actor)
        return spreadsheets.run(app, args)
    raise AssertionError(command)


def read_commands(stream: TextIO) -> list[tuple[int, Command]]:
    """JSON lines → validated commands with their line numbers; blank lines are skipped."""
    commands = []
    try:
        lines = list(stream)
    except UnicodeDecodeError:
        raise DomainError("输入不是 UTF-8 编码的文本") from None
    if lines and lines[0].startswith("\ufeff"):  # a byte-order mark, as Windows Notepad writes
        lines[0] = lines[0][1:]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        data = _json_line(number, line)
        try:
            commands.append((number, parse_command(data)))
        except DomainError as error:
            name = data.get("cmd", "") if isinstance(data, dict) else ""
            where = f"第{number}行 {name}" if isinstance(name, str) and name else f"第{number}行"
            raise DomainError(f"{where}：{error.message}", field=error.field) from None
    return commands


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise DomainError(f"字段 “{printable(key)}” 出现了两次，只能写一次", field=key)
        found[key] = value
    return found


def _json_line(number: int, line: str) -> Any:
    """One line's JSON: numbers with a fraction or exponent as Decimal (exact), a key given
    twice refused (the last one would silently win)."""
    try:
        return json.loads(line, parse_float=Decimal, object_pairs_hook=_no_repeated_keys)
    except json.JSONDecodeError as error:
        raise DomainError(
            f"第{number}行：不是有效的 JSON（第{error.colno}列：{error.msg}）"
        ) from None
    except DomainError as error:
        raise DomainError(f"第{number}行：{error.message}", field=error.field) from None
    except RecursionError:
        raise DomainError(f"第{number}行：JSON 嵌套层数过多") from None
    except ValueError:  # Python refuses integers of more than 4300 digits
        raise DomainError(f"第{number}行：数字位数过多") from None


def record(app: LandLedger, path: str | None, actor: str) -> int:
    if path:
        try:
            with open(path, encoding="utf-8") as stream:
                numbered = read_commands(stream)
        except OSError as error:
            raise DomainError(f"无法读取命令文件 {path}：{error.strerror}") from None
    else:
        numbered = read_commands(sys.stdin)
    if not numbered:
        raise DomainError("没有命令：输入为空")
    try:
        result = app.record([command for _, command in numbered], actor)
    except CommandRejected as error:
        number = numbered[error.index][0]
        raise DomainError(
            f"第{number}行 {error.command}：{error.message}（全部未写入）", field=error.field
        ) from None
    print(
        f"已记录 {result.commands} 条命令（{result.events} 个事件），"
        f"涉及 {len(result.refs)} 个案件，其中新发现 {len(result.new_refs)} 个",
        flush=True,
    )
    catch_up_after_commit(app)
    return 0


def catch_up_after_commit(app: LandLedger) -> None:
    """Bring the read model up to the write just committed, so the caller sees it at once.
    The write stands whatever happens here: a failure is a warning (the next command that
    reads catches up), never an exit status that would make the user record it again."""
    from projections.store import ReadModel

    try:
        model = ReadModel(app)
        try:
            model.catch_up()
            warn_left_out(model.skipped)
        finally:
            model.close()
    except Exception as error:
        print(
            "警告：以上记录已写入；读模型（台账、统计）暂未更新，将在下次查询时自动补上"
            f"（{printable(str(error))}）",
            file=sys.stderr,
        )


def warn_left_out(skipped: Sequence[Any]) -> None:
    """Events the read side left out as it caught up (projections.ledger.fold): said once, when
    they are first met; the log keeps them, `history` and the event log show them."""
    for fact in skipped[:5]:
        print(
            f"警告：第 {fact.position} 个事件（{printable(str(fact.data.get('ref', '')))}，"
            f"{fact.kind}）的数值超出上限（记录于检查上限之前），未计入台账和统计",
            file=sys.stderr,
        )
    if len(skipped) > 5:
        print(f"警告：另有 {len(skipped) - 5} 个这样的事件", file=sys.stderr)


def rebuild(app: LandLedger) -> int:
    from projections.store import ReadModel

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            filled = 30 * done // max(total, 1)
            bar = "█" * filled + "░" * (30 - filled)
            print(f"\r重建读模型 {bar} {done}/{total}", end="", file=sys.stderr, flush=True)

    started = time.perf_counter()
    total = ReadModel(app).rebuild(progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"已重建读模型：{total} 个事件，用时 {time.perf_counter() - started:.1f} 秒")
    return 0


def alerts(app: LandLedger, *, as_json: bool) -> int:
    from projections.store import ReadModel

    model = ReadModel(app)
    model.catch_up()
    warn_left_out(model.skipped)
    found = model.alerts(china_today(), app.campaign(), listed=20 if as_json else 5)
    if as_json:
        print(json.dumps([vars(alert) for alert in found], ensure_ascii=False))
        return 0
    for alert in found:
        more = "……" if alert.count > len(alert.first) else ""
        listed = f"：{'、'.join(alert.first)}{more}" if alert.first else ""
        print(printable(f"{alert.title}　{alert.count} 项{listed}"))
    return 0


def parse_cutoffs(as_of: str | None, known_at: str | None) -> tuple[date | None, datetime | None]:
    day = moment = None
    if as_of is not None:
        try:
            day = parse_iso_date(as_of)
        except ValueError:
            raise DomainError(
                f"--as-of：“{printable(as_of)}”不是有效日期，应为 YYYY-MM-DD"
            ) from None
    if known_at is not None:
        try:
            moment = parse_timestamp(known_at)
        except (ValueError, OverflowError):
            raise DomainError(
                f"--known-at：“{printable(known_at)}”不是有效时间，应为 ISO 8601，"
                "如 2022-02-28T18:00"
            ) from None
    return day, moment


def stats(app: LandLedger, args: argparse.Namespace) -> int:
    from projections.read import Reader

    as_of, known_at = parse_cutoffs(args.as_of, args.known_at)
    reader = Reader(app)
    warn_left_out(reader.model.skipped)
    result = reader.stats(by=args.by, as_of=as_of, known_at=known_at)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
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
    cutoff = result["as_of"] or "今天"
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


def history(app: LandLedger, ref: str, *, unmasked: bool) -> int:
    for event in app.history(ref):
        fields = event.model_dump(exclude_defaults=True, exclude=HIDDEN_IN_HISTORY, warnings=False)
        shown = " ".join(f"{label(k)}={_show(k, v, unmasked)}" for k, v in fields.items())
        recorded = event.timestamp.astimezone(CHINA).isoformat(timespec="seconds")
        actor = event.actor + (f"（{event.actor_unit}）" if event.actor_unit else "")
        print(printable(f"{event.on}  {recorded}  {actor}  {event.TITLE}  {shown}".rstrip()))
    return 0


HIDDEN_IN_HISTORY = {
    "originator_id",
    "originator_version",
    "timestamp",
    "actor",
    "actor_unit",
    "ref",
    "on",
}


def _show(field: str, value: Any, unmasked: bool) -> str:
    if isinstance(value, tuple | list):
        return "、".join(str(v) for v in value)
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, Decimal) and field.endswith(("_m2", "_yuan")):
        return show_amount(field, value)
    # One event a line: a line break inside a note is shown as \n.
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    if not unmasked and field == "party_id_no":
        return mask_id(text)
    if not unmasked and field == "party_phone":
        return mask_phone(text)
    return text


if __name__ == "__main__":
    sys.exit(main())
