"""`landledger export …` and `landledger import …`: the spreadsheets on the command line.

    export {table2|ledger|problems|contacts|events|template} --out F
           [--as-of DATE] [--known-at TS] [--by township|unit] [--unmasked]
    import F.xlsx [--dry-run]

Exit 0 on success; 1 on rejected input (reasons in Chinese on standard error, nothing written);
2 for command-line misuse (argparse).
"""

import argparse
import getpass
import os
import sys
import time
from typing import Any

from domain.errors import DomainError
from domain.service import LandLedger
from domain.values import printable

KINDS = ("table2", "ledger", "problems", "contacts", "events", "template")
COMMANDS = ("export", "import")
TITLES = {
    "table2": "附件2 统计表",
    "ledger": "台账",
    "problems": "问题清单",
    "contacts": "附件1 联络人",
    "events": "事件日志",
    "template": "台账导入模板",
}


def add_parsers(subparsers: Any) -> None:
    export = subparsers.add_parser(
        "export", help="导出表格：附件2、台账、问题清单、附件1、事件日志、模板"
    )
    export.add_argument("kind", choices=KINDS, help="导出哪张表")
    export.add_argument("--out", required=True, help="输出文件（xlsx；events 为 .jsonl）")
    export.add_argument("--as-of", help="业务日期截止 YYYY-MM-DD（默认今天）")
    export.add_argument("--known-at", help="记录时间截止（ISO 8601，无时区视为北京时间）")
    export.add_argument(
        "--by", default="township", choices=["township", "unit"], help="按乡镇或责任单位分组"
    )
    export.add_argument("--unmasked", action="store_true", help="不遮蔽证件号码和电话")
    imported = subparsers.add_parser(
        "import", help="导入台账表格（整表校验，全部成功或全部不写入）"
    )
    imported.add_argument("file", help="xlsx 文件（台账格式，见 export template）")
    imported.add_argument("--dry-run", action="store_true", help="只校验并报告，不写入")


def run(app: LandLedger, args: argparse.Namespace) -> int:
    if args.command == "import":
        return run_import(app, args.file, dry_run=args.dry_run, actor=_actor(args))
    return run_export(app, args)


def _actor(args: argparse.Namespace) -> str:
    return args.actor or os.environ.get("LANDLEDGER_ACTOR") or getpass.getuser()


class _Progress:
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


def run_export(app: LandLedger, args: argparse.Namespace) -> int:
    from exports.stamp import stamp
    from projections.read import Reader
    from tui.cli import parse_cutoffs

    as_of, known_at = parse_cutoffs(args.as_of, args.known_at)
    out = args.out
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise DomainError(f"--out：目录 {folder} 不存在")
    mark = stamp(app, as_of, known_at)
    campaign = app.campaign()
    config = campaign.config
    kind = args.kind
    progress = _Progress(TITLES[kind])
    try:
        if kind == "table2":
            from exports.table2 import contact_for, write_table2

            stats = Reader(app).stats(by=args.by, as_of=as_of, known_at=known_at)
            write_table2(
                out, stats, config=config, contact=contact_for(campaign.contacts), stamp=mark
            )
            count = len(stats["groups"])
        elif kind == "ledger":
            from exports.ledger import write_ledger

            rows = Reader(app).ledger(as_of=as_of, known_at=known_at)
            count = write_ledger(
                out, rows, config=config, stamp=mark, unmasked=args.unmasked, progress=progress
            )
        elif kind == "problems":
            from exports.problems import write_problems
            from projections.problems import problems

            rows = Reader(app).ledger(as_of=as_of, known_at=known_at)
            items = problems(rows, mark.cutoff, config, dict(campaign.deadlines))
            count = write_problems(out, items, config=config, stamp=mark, by=args.by)
        elif kind == "contacts":
            from exports.problems import write_contacts

            count = write_contacts(
                out, campaign.contacts, config=config, stamp=mark, unmasked=args.unmasked
            )
        elif kind == "events":
            from exports.events import write_events

            count = write_events(out, app, stamp=mark, unmasked=args.unmasked, progress=progress)
        else:
            from exports.ledger import example_row, write_template

            write_template(out, config=config, stamp=mark, example=example_row(config, mark.cutoff))
            count = 1
    except OSError as error:
        raise DomainError(f"无法写入 {out}：{error.strerror or error}") from None
    finally:
        progress.end()
    unit = {"table2": "组", "events": "个事件", "contacts": "个单位已报送", "template": "个示例行"}
    print(printable(f"已导出{TITLES[kind]} → {out}：{count} {unit.get(kind, '行')}；{mark.line()}"))
    return 0


def run_import(app: LandLedger, path: str, *, dry_run: bool, actor: str) -> int:
    from exports.importer import apply_import, plan_import

    report = plan_import(app, path, actor)
    if not report.errors and not dry_run:
        apply_import(app, report, actor)
    for name in report.ignored_headers:
        print(f"提示：未识别的列“{printable(name)}”，未导入", file=sys.stderr)
    if report.errors:
        for line in report.errors:
            print(printable(line), file=sys.stderr)
        print(f"错误：{path} 有 {len(report.errors)} 处错误，全部未导入", file=sys.stderr)
        return 1
    for line in report.differences:
        print(printable(line), file=sys.stderr)
    verb = "试导入（未写入）：将新增" if dry_run else "已导入：新增"
    events = len(report.commands) if dry_run else report.events
    print(
        f"{path} {verb} {len(report.new_rows)} 个案件（{events} 个事件）；"
        f"已存在且相同 {len(report.same_rows)} 行；差异 {len(report.differences)} 行（未导入）"
        + (f"；跳过示例行 {report.examples} 行" if report.examples else "")
    )
    return 0
