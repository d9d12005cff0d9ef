"""Ledger export at province scale: time and peak memory of the xlsx writers.

    python bench/exports.py --cases 200000 [--db /tmp/landledger-bench-200000.db]

1. Builds (or reuses) a SQLite store of N cases through `app.record` in batches of 1000 commands,
   each case carried along a random part of its path (stop, file, decide, refer, rectify, close).
2. Reads the ledger once (`Reader(app).ledger()`), timed.
3. Writes the same rows with each writer in a forked child: our streaming writer
   (`exports.ledger.write_ledger`), openpyxl write-only, xlsxwriter constant_memory (when
   installed). Memory is the child's peak RSS above its RSS before writing (VmHWM reset through
   /proc/self/clear_refs), so it counts the writer, not the rows it was given.
"""

import argparse
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.commands import parse_command
from exports.columns import COLUMNS, values
from exports.ledger import cell, write_ledger
from exports.stamp import stamp
from projections.ledger import LedgerRow
from projections.read import Reader
from service.ledger import LandLedger

START = date(2022, 1, 10)


def case_commands(
    i: int, rng: random.Random, townships: Sequence[str], units: Sequence[str]
) -> list[dict[str, Any]]:
    ref = f"B-{i:07d}"
    t = rng.randrange(len(townships))
    found = START + timedelta(days=rng.randrange(60))
    area = Decimal(rng.randrange(5000, 2_000_000)) / 100
    cultivated = (area * Decimal(rng.random())).quantize(Decimal("0.01"))
    basic = (cultivated * Decimal(rng.random())).quantize(Decimal("0.01"))
    out: list[dict[str, Any]] = [
        {
            "cmd": "find_site",
            "ref": ref,
            "on": found.isoformat(),
            "source": rng.choice(["巡查", "卫片", "举报", "上级交办", "自查"]),
            "township": townships[t],
            "village": f"第{rng.randrange(1, 40)}村",
            "location": f"村委会东{rng.randrange(10, 900)}米",
            "project_name": f"项目{i}号厂房",
            "party_name": f"当事人{i}",
            "party_kind": rng.choice(["个人", "单位", "村集体"]),
            "party_id_no": f"1404{rng.randrange(10**13, 10**14)}",
            "party_phone": f"13{rng.randrange(10**8, 10**9)}",
            "violation_types": rng.sample(["无规划许可", "占用耕地", "占用永久基本农田"], 2),
            "land_use": "厂房",
            "area_m2": str(area),
            "cultivated_m2": str(cultivated),
            "basic_farmland_m2": str(basic),
            "major_hazard": rng.random() < 0.05,
            "unit": units[t],  # the township's own 自然资源所, same order
        }
    ]
    day = found

    def step(cmd: str, **fields: Any) -> None:
        nonlocal day
        day = min(day + timedelta(days=rng.randrange(0, 6)), date(2022, 6, 30))
        out.append({"cmd": cmd, "ref": ref, "on": day.isoformat(), **fields})

    stage = rng.random()
    if stage < 0.05:
        step("dismiss", reason="不属实")
        return out
    step("stop", order_no=f"责停{i}", outcome="停工")
    if stage < 0.25:
        return out
    step("file_case", case_no=f"立{i}", handlers=["张三"])
    if stage < 0.35:
        return out
    step("decide_penalty", decision_no=f"罚{i}", fine_yuan=str(area * 10))
    if rng.random() < 0.1:
        step("refer", agency="公安", persons=1, doc_no=f"移{i}")
    step("order_rectification", measures=["拆除复耕", "罚款"], due_on="2022-03-31")
    if stage < 0.55:
        return out
    half = (area / 2).quantize(Decimal("0.01"))
    step("record_rectification", demolished_m2=str(half), fine_paid_yuan=str(area * 10))
    step("complete_rectification", verified_by="李四")
    if stage < 0.75:
        return out
    step("close_out", basis="验收合格")
    return out


def build_store(db: str, cases: int) -> LandLedger:
    app = LandLedger(db)
    have = app.ledger_recorder.count_refs()
    if have >= cases:
        print(f"store {db}: {have} cases already")
        return app
    config = app.campaign().config
    rng = random.Random(7)
    started = time.perf_counter()
    batch: list[Any] = []
    for i in range(have, cases):
        batch.extend(
            parse_command(c) for c in case_commands(i, rng, config.townships, config.units)
        )
        if len(batch) >= 1000 or i == cases - 1:
            app.record(batch, "bench")
            batch = []
            if (i + 1) % 20000 == 0:
                print(
                    f"  recorded {i + 1} cases, {time.perf_counter() - started:.0f} s", flush=True
                )
    print(f"store {db}: {cases} cases in {time.perf_counter() - started:.0f} s")
    return app


def _rss(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def measure(name: str, write: Callable[[str], None], out: str) -> None:
    """Run `write` in a forked child; print its time and its peak memory above the start."""
    read, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # reset the peak (VmHWM) to the current RSS
        base = _rss("VmRSS:")
        started, cpu = time.perf_counter(), time.process_time()
        write(out)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        peak = _rss("VmHWM:") - base
        os.write(write_end, f"{seconds:.1f} {cpu:.1f} {peak / 2**20:.0f}".encode())
        os._exit(0)
    os.close(write_end)
    result = os.read(read, 100).decode()
    os.waitpid(pid, 0)
    wall, used, top = result.split()  # as the child wrote them
    size = os.path.getsize(out) / 2**20
    load = os.getloadavg()[0]
    print(
        f"{name:<12} {wall:>6} s wall {used:>6} s CPU {top:>5} MB peak above start"
        f"   file {size:.0f} MB   (load average {load:.1f})"
    )


def rows_as_cells(rows: Iterable[LedgerRow]) -> Any:
    columns = COLUMNS[1:]
    for n, row in enumerate(rows, start=1):
        found = values(row)
        yield [n, *(cell(c, found[c.key]) for c in columns)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--db")
    parser.add_argument("--out", default="/tmp")
    parser.add_argument("--only", choices=["ours", "openpyxl", "xlsxwriter"])
    args = parser.parse_args()
    db = args.db or f"/tmp/landledger-bench-{args.cases}.db"
    app = build_store(db, args.cases)
    started = time.perf_counter()
    rows = Reader(app).ledger()
    print(f"Reader.ledger(): {len(rows)} rows in {time.perf_counter() - started:.1f} s")
    config = app.campaign().config
    mark = stamp(app, None, None)
    out = Path(args.out)

    def ours(path: str) -> None:
        write_ledger(path, rows, config=config, stamp=mark)

    def with_openpyxl(path: str) -> None:
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        sheet = book.create_sheet("台账")
        sheet.append([c.header for c in COLUMNS])
        for cells in rows_as_cells(rows):
            sheet.append(cells)
        book.save(path)

    def with_xlsxwriter(path: str) -> None:
        import xlsxwriter

        book = xlsxwriter.Workbook(path, {"constant_memory": True})
        sheet = book.add_worksheet("台账")
        day = book.add_format({"num_format": "yyyy-mm-dd"})
        sheet.write_row(0, 0, [c.header for c in COLUMNS])
        for r, cells in enumerate(rows_as_cells(rows), start=1):
            for col, value in enumerate(cells):
                if value is None:
                    continue
                if isinstance(value, date):
                    sheet.write_datetime(r, col, value, day)
                elif isinstance(value, Decimal):
                    sheet.write_number(r, col, float(value))
                else:
                    sheet.write(r, col, value)
        book.close()

    print(f"{len(rows)} rows × {len(COLUMNS)} columns")
    writers = {"ours": ours, "openpyxl": with_openpyxl, "xlsxwriter": with_xlsxwriter}
    for name, writer in writers.items():
        if args.only and name != args.only:
            continue
        if name == "xlsxwriter":
            try:
                import xlsxwriter  # noqa: F401
            except ImportError:
                print("xlsxwriter not installed: skipped")
                continue
        measure(name, writer, str(out / f"bench-ledger-{name}.xlsx"))


if __name__ == "__main__":
    main()
