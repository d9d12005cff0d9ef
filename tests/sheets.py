"""Spreadsheet test helpers: a store with every kind of case, and two independent xlsx readers."""

from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
from helpers import cmd, find, record
from python_calamine import CalamineWorkbook

from service.ledger import LandLedger

ID = "110101199001011234"
PHONE = "13812345678"


def record_varied(app: LandLedger) -> None:
    """Twelve cases over four townships along every path: dismissed, stopped, filed, decided,
    referred (公安 with persons, 纪检监察, 住建), rectified with a permit, closed out, reopened,
    overdue, over the crime threshold, a major hazard, a correction, flags, personal data."""
    record(
        app,
        find("A-01", party_id_no=ID, party_phone=PHONE, party_name="张三", party_kind="个人"),
        find(
            "A-02",
            "2022-01-20",
            township="韩店街道",
            unit="韩店自然资源所",
            violation_types=["占用永久基本农田", "无规划许可"],
            area_m2="5000.00",
            cultivated_m2="4000.00",
            basic_farmland_m2="3333.33",
            major_hazard=True,
            hazard_note="高边坡",
            village="东村 ",
            lon=113.05,
            lat=36.1,
        ),
        find("A-03", "2022-02-01", township="南宋乡", unit="南宋自然资源所", area_m2="100.10"),
        find("A-04", "2022-02-03", eco_redline_m2="50.00", violation_types=["侵占生态保护红线"]),
        find("A-05", "2022-02-05", township="北呈乡", unit="北呈自然资源所", area_m2="7000"),
        find("A-06", "2022-02-06", cultivated_m2="800.00", party_id_no="140402198001010011"),
        find("A-07", "2022-03-10", township="韩店街道", unit="执法监察大队"),
        find("A-08", "2022-02-07", area_m2="7000.55", cultivated_m2="6666.67"),
        cmd("dismiss", "A-03", "2022-02-10", reason="不属实"),
        cmd("stop", "A-01", "2022-02-11", order_no="责停1号", outcome="停工"),
        cmd("file_case", "A-01", "2022-02-12", case_no="立1", handlers=["甲", "乙"]),
        cmd("decide_penalty", "A-01", "2022-02-20", decision_no="罚1", fine_yuan="12345.67"),
        cmd("refer", "A-01", "2022-02-21", agency="公安", persons=2, doc_no="移1"),
        cmd(
            "order_rectification", "A-01", "2022-02-22", measures=["拆除复耕"], due_on="2022-03-01"
        ),
        cmd("file_case", "A-02", "2022-01-25", case_no="立2"),
        cmd("decide_penalty", "A-02", "2022-02-01", decision_no="罚2", fine_yuan="50000"),
        cmd("refer", "A-02", "2022-02-02", agency="纪检监察", persons=1),
        cmd("refer", "A-02", "2022-02-03", agency="住建"),
        cmd(
            "order_rectification", "A-02", "2022-02-04", measures=["补办手续"], due_on="2022-02-20"
        ),
        cmd(
            "record_rectification",
            "A-02",
            "2022-02-15",
            demolished_m2="120.50",
            restored_m2="666.67",
            fine_paid_yuan="50000",
            permit_doc_no="补1",
            permit_area_m2="300",
        ),
        cmd("complete_rectification", "A-02", "2022-02-18"),
        cmd("close_out", "A-02", "2022-02-25", basis="验收"),
        cmd("flag", "A-02", "2022-02-26", kind="典型案件"),
        cmd("stop", "A-05", "2022-02-06"),
        cmd(
            "order_rectification", "A-05", "2022-02-07", measures=["拆除复耕"], due_on="2022-02-15"
        ),
        cmd("complete_rectification", "A-05", "2022-02-16"),
        cmd("close_out", "A-05", "2022-02-17"),
        cmd("reopen", "A-05", "2022-03-02", reason="复查发现未拆除"),
        cmd("correct_site", "A-06", "2022-02-09", cultivated_m2="900.00", reason="复测"),
        cmd("flag", "A-08", "2022-02-08", kind="挂牌督办"),
        cmd("dismiss", "A-04", "2022-02-09", reason="重复"),
        cmd("reopen", "A-04", "2022-02-12", reason="误排除"),
    )
    record(
        app,
        {
            "cmd": "set_contact",
            "unit": "执法监察大队",
            "name": "王建国",
            "position": "大队长",
            "office_phone": "0355-8123456",
            "mobile": "13803550001",
            "on": "2022-01-20",
        },
    )


def calamine(path: str | Path, sheet: int = 0) -> list[list[Any]]:
    return CalamineWorkbook.from_path(str(path)).get_sheet_by_index(sheet).to_python()


def pyxl(path: str | Path, sheet: int = 0) -> list[list[Any]]:
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = [list(r) for r in book.worksheets[sheet].iter_rows(values_only=True)]
    finally:
        book.close()
    return [[_day(v) for v in row] for row in rows]


def _day(value: Any) -> Any:
    return value.date() if isinstance(value, datetime) else value


def same_cell(a: Any, b: Any) -> bool:
    """calamine gives '' and floats, openpyxl None and ints: the same cell either way."""
    if a in ("", None) and b in ("", None):
        return True
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(a - b) < 1e-9
    if isinstance(a, datetime | date) and isinstance(b, datetime | date):
        return _day(a) == _day(b)
    return bool(a == b)


def both(path: str | Path, sheet: int = 0) -> list[list[Any]]:
    """Read with both readers, check they agree cell for cell, return calamine's rows."""
    left, right = calamine(path, sheet), pyxl(path, sheet)
    width = max(len(r) for r in left + right)
    pad = lambda rows: [r + [""] * (width - len(r)) for r in rows]  # noqa: E731
    left_rows = [r for r in pad(left)]
    right_rows = [r for r in pad(right)]
    while right_rows and all(v in ("", None) for v in right_rows[-1]):
        right_rows.pop()
    while left_rows and all(v in ("", None) for v in left_rows[-1]):
        left_rows.pop()
    assert len(left_rows) == len(right_rows)
    for n, (a, b) in enumerate(zip(left_rows, right_rows, strict=True), start=1):
        for col, (x, y) in enumerate(zip(a, b, strict=True)):
            assert same_cell(x, y), f"row {n} col {col}: calamine {x!r}, openpyxl {y!r}"
    return left_rows
