"""Hostile spreadsheets for `import` (issue 15): a sheet of any shape is imported whole (exit 0,
every stored value within DESIGN's bounds) or refused in Chinese (exit 1) with nothing written;
what DESIGN says must be refused always is; and no file hangs the reader or eats the memory."""

import itertools
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from fuzzing import assert_refused, assert_within_design_bounds, fingerprint, fuzz_settings
from helpers import cli
from hypothesis import example, given
from hypothesis import strategies as st
from openpyxl.utils import get_column_letter

from exports import importer
from exports.columns import COLUMNS

HEADER = [c.header for c in COLUMNS]
KIND = {c.header: c.kind for c in COLUMNS}
BASE = {
    "乡镇（街道）": "苏店镇",
    "线索来源": "巡查",
    "发现日期": "2022-02-10",
    "违法类型": "占用耕地",
    "占地面积（亩）": "1.5",
    "责任单位": "苏店自然资源所",
}
NUMBERS = {"mu", "m2", "yuan", "number", "int"}
ALL = {*NUMBERS, "date", "text"}
# A cell's hostile value, and the kinds of column where DESIGN says it must be refused.
HOSTILE: list[tuple[Any, set[str]]] = [
    (1e20, {*NUMBERS, "date"}),  # past every bound; no date serial
    (-5, {*NUMBERS, "date"}),
    ("abc", {*NUMBERS, "date"}),
    ("NaN", {*NUMBERS, "date"}),
    ("Infinity", {*NUMBERS, "date"}),
    ("1e99999999", {*NUMBERS, "date"}),
    ("=1+1", ALL),  # a formula whose result the file does not hold
    ("１２３", {"date"}),  # full-width digits are a number
    ("１．５", {"date", "int"}),
    (44602, {"int"}),  # an Excel date serial: 2022-02-10; 44,602 persons is past 10,000
    ("2022年2月10日", NUMBERS),
    ("2022/2/30", {*NUMBERS, "date"}),
    (datetime(2022, 2, 10), NUMBERS),
    (True, {*NUMBERS, "date"}),
    ("厂" * 3000, ALL),  # a text past 2,000 characters
    (0.001, {"m2", "date", "int"}),  # three places of ㎡ (0.001 亩 is 0.67 ㎡)
    (10**7, {"mu", "int"}),  # 10,000,000 亩 is past 100,000,000 ㎡
    ("", set()),
    (" 苏店镇 ", set()),
]
MUTABLE = [
    "编号",
    "项目名称",
    "发现日期",
    "制止日期",
    "占地面积（亩）",
    "建筑面积（㎡）",
    "移送公安人数",
]
_refs = itertools.count(1)


def write_sheet(path: Path, spec: dict[str, Any]) -> Path:
    book = openpyxl.Workbook()
    ws = book.active
    if spec["notes_sheet_first"]:  # the ledger on the second sheet, a note sheet before it
        ws.title = "填表说明"
        ws.append(["填表说明：编号必填"])
        ws.append(["乡镇", "只填本乡镇"])
        ws = book.create_sheet("台账")
    for n in range(spec["titles"]):
        ws.append([f"上党区违法用地台账（标题{n + 1}）"])
        ws.merge_cells(start_row=n + 1, start_column=1, end_row=n + 1, end_column=8)
    header = list(spec["header"])
    if header:
        ws.append(header)
    for cells in spec["rows"]:
        ws.append([cells.get(h) for h in HEADER] if cells else [])
        if cells and cells.get("merge"):  # the 项目名称 cell merged over 当事人's
            at = HEADER.index("项目名称") + 1
            ws.merge_cells(
                start_row=ws.max_row, start_column=at, end_row=ws.max_row, end_column=at + 1
            )
    book.save(path)
    return path


HEADERS: dict[str, tuple[list[str], bool]] = {  # variant: (header, must be refused)
    "exact": (HEADER, False),
    "renamed": (
        [{"乡镇（街道）": "乡镇", "占地面积（亩）": "占地面积(亩)"}.get(h, h) for h in HEADER],
        False,
    ),
    "missing": ([h for h in HEADER if h != "发现日期"], True),
    "twice": ([*HEADER, "乡镇"], True),  # 乡镇 is 乡镇（街道） again
    "none": ([], True),
}


@st.composite
def sheets(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    """A sheet's spec and whether DESIGN says it must be refused."""
    variant = draw(st.sampled_from(sorted(HEADERS)))
    header, must = HEADERS[variant]
    rows: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            rows.append({})  # an empty row in the middle
        cells: dict[str, Any] = {**BASE, "编号": f"FS-{next(_refs)}"}
        for column in draw(st.lists(st.sampled_from(MUTABLE), max_size=2, unique=True)):
            value, refused_in = draw(st.sampled_from(HOSTILE))
            cells[column] = value
            kind = KIND[column] if KIND[column] in ALL else "text"
            must = must or kind in refused_in
        cells["merge"] = draw(st.booleans()) and draw(st.booleans())
        rows.append({**cells, "当事人": "张三"} if cells["merge"] else cells)
    spec = {
        "notes_sheet_first": draw(st.booleans()),
        "titles": draw(st.integers(0, 2)),
        "header": header,
        "rows": rows,
    }
    return spec, must


def test_any_sheet_is_imported_whole_or_refused_in_chinese(
    new_store: Callable[[], str], tmp_path: Path
) -> None:
    db = new_store()
    path = tmp_path / "fuzz.xlsx"

    @fuzz_settings(30)
    @given(sheets())
    @example(({"notes_sheet_first": True, "titles": 2, "header": HEADER, "rows": [{}]}, False))
    def probe(case: tuple[dict[str, Any], bool]) -> None:
        spec, must_refuse = case
        write_sheet(path, spec)
        before = fingerprint(db)
        code, out, err = cli("--db", db, "import", str(path))
        assert "Traceback" not in err, err
        if code == 0:
            assert not must_refuse, (spec, out, err)
            assert out.startswith(str(path)), out
            assert_within_design_bounds(db)
        else:
            assert code == 1 and out == "" and "错误：" in err, (code, out, err)
            assert fingerprint(db) == before

    probe()
    code, _, err = cli("--db", db, "rebuild")
    assert code == 0, err


# Files that are no workbook, or a workbook that lies about its size -------------------------


def _workbook_parts(tmp_path: Path) -> dict[str, bytes]:
    path = write_sheet(
        tmp_path / "small.xlsx",
        {
            "notes_sheet_first": False,
            "titles": 0,
            "header": HEADER,
            "rows": [{**BASE, "编号": "S-1"}],
        },
    )
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def _with_sheet(tmp_path: Path, name: str, change: Callable[[str], str]) -> Path:
    parts = _workbook_parts(tmp_path)
    sheet = "xl/worksheets/sheet1.xml"
    parts[sheet] = change(parts[sheet].decode()).encode()
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for part, data in parts.items():
            z.writestr(part, data)
    return path


def _row(number: int, ref: str) -> str:
    """A ledger row in the sheet's XML: 编号 (column B) and the required cells."""
    cells = {**BASE, "编号": ref}
    xml = "".join(
        f'<c r="{get_column_letter(i + 1)}{number}" t="inlineStr"><is><t>{cells[h]}</t></is></c>'
        for i, h in enumerate(HEADER)
        if h in cells
    )
    return f'<row r="{number}">{xml}</row>'


def _claiming(dimension: str, extra_rows: str) -> Callable[[str], str]:
    def change(xml: str) -> str:
        xml = re.sub(r'<dimension ref="[^"]*"\s*/>', f'<dimension ref="{dimension}"/>', xml)
        return xml.replace("</sheetData>", extra_rows + "</sheetData>")

    return change


@pytest.mark.backends("sqlite")  # a file's reading
def test_rows_past_a_wrong_dimension_are_read_not_dropped(db_url: str, tmp_path: Path) -> None:
    # The sheet says it ends at row 2 (A1:BI2), and holds rows 3 and 4: a program wrote a wrong
    # <dimension>. Reading stopped at row 2 and reported one case, the other two dropped unsaid.
    path = _with_sheet(tmp_path, "lying.xlsx", _claiming("A1:BI2", _row(3, "S-2") + _row(4, "S-3")))
    code, out, err = cli("--db", db_url, "import", str(path))
    assert code == 0 and "新增 3 个案件" in out, (out, err)


@pytest.mark.backends("sqlite")  # a file's reading
def test_cells_written_out_of_order_are_read(db_url: str, tmp_path: Path) -> None:
    # 备注 (the last column) written before 责任单位: read-only openpyxl, once the dimension is
    # set aside, ended the row at the cell written last and dropped 备注 without a word.
    note = f'<c r="{get_column_letter(len(HEADER))}3" t="inlineStr"><is><t>重要线索</t></is></c>'
    unit = get_column_letter(HEADER.index("责任单位") + 1)
    row = _row(3, "S-2").replace(f'<c r="{unit}3"', note + f'<c r="{unit}3"')
    assert HEADER[-1] == "备注" and note in row
    path = _with_sheet(tmp_path, "order.xlsx", _claiming("A1:BI3", row))
    code, out, err = cli("--db", db_url, "import", str(path))
    assert code == 0 and "新增 2 个案件" in out, (out, err)
    code, out, err = cli("--db", db_url, "history", "S-2")
    assert code == 0 and "备注=重要线索" in out, (out, err)


@pytest.mark.backends("sqlite")  # a file's reading
def test_a_sheet_claiming_1048576_rows_is_read_in_little_memory(
    db_url: str, tmp_path: Path
) -> None:
    # A 6 KB file whose sheet claims Excel's last row (A1:BI1048576) and holds a row there: the
    # reader kept a million empty rows of 61 cells (17 s and 756 MB here); now only what is filled.
    path = _with_sheet(
        tmp_path, "sparse.xlsx", _claiming("A1:BI1048576", _row(1_048_576, "S-LAST"))
    )
    assert path.stat().st_size < 10_000
    # The peak of this process's own memory (VmHWM): getrusage's maxrss also counts the forked
    # copy of the test runner it was started from, hundreds of MB late in a full run.
    script = (
        "import re, sys\n"
        "from tui.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
        "print('maxrss', peak, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", script, "--db", db_url, "import", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert done.returncode == 0 and "新增 2 个案件" in done.stdout, done.stderr
    peak_kb = int(done.stderr.split("maxrss ")[1].split()[0])
    assert peak_kb < 300_000, f"peak memory {peak_kb} KB"
    code, out, err = cli("--db", db_url, "history", "S-LAST")
    assert code == 0 and "苏店镇" in out, err


@pytest.mark.backends("sqlite")  # a file's reading
def test_a_sheet_past_the_row_limit_is_refused(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "MAX_SHEET_ROWS", 2)  # 200,000 rows to write is too slow here
    rows = "".join(_row(n, f"S-{n}") for n in range(3, 6))
    path = _with_sheet(tmp_path, "long.xlsx", _claiming("A1:BI5", rows))
    before = fingerprint(db_url)
    code, out, err = cli("--db", db_url, "import", str(path))
    assert_refused(code, out, err)
    assert err == f"错误：{path}：数据超过 2 行（第4行仍有内容），请分成几个文件导入\n"
    assert fingerprint(db_url) == before


@pytest.mark.backends("sqlite")  # a file's reading
@pytest.mark.parametrize(
    "make",
    [
        "zip-of-text",
        "truncated",
        "empty",
        "random-bytes",
        "csv",
        "no-sheets",
        "sheet-xml-broken",
    ],
)
def test_a_file_that_is_no_workbook_is_refused(db_url: str, tmp_path: Path, make: str) -> None:
    path = tmp_path / f"{make}.xlsx"
    whole = tmp_path / "whole.xlsx"
    write_sheet(
        whole,
        {
            "notes_sheet_first": False,
            "titles": 0,
            "header": HEADER,
            "rows": [{**BASE, "编号": "S"}],
        },
    )
    if make == "zip-of-text":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("readme.txt", "这不是工作簿")
    elif make == "truncated":
        path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    elif make == "empty":
        path.write_bytes(b"")
    elif make == "random-bytes":
        path.write_bytes(bytes(range(256)) * 40)
    elif make == "csv":
        path.write_text("编号,乡镇（街道）\nS-1,苏店镇\n", encoding="utf-8")
    elif make == "no-sheets":
        parts = _workbook_parts(tmp_path)
        with zipfile.ZipFile(path, "w") as z:
            for part, data in parts.items():
                if "worksheets" not in part:
                    z.writestr(part, data)
    else:
        path = _with_sheet(tmp_path, path.name, lambda xml: xml[: len(xml) // 2])
    app_before = fingerprint(db_url)
    code, out, err = cli("--db", db_url, "import", str(path))
    assert_refused(code, out, err)
    assert str(path) in err
    assert fingerprint(db_url) == app_before
