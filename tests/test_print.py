"""What a printer and a colleague meet: page setup read back with openpyxl (orientation, fitting,
repeated titles, the scale the widths imply, grid, wrap) and the exported files' names and modes.

No rendering here (CI has no LibreOffice): the scale is computed from the widths as LibreOffice
prints our default font, the wider of the two programs the receivers use (docs/print/)."""

import os
import stat
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from helpers import cli, cmd, find, record
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from sheets import record_varied

from domain.campaign import load_config
from domain.values import CHINA
from exports.stamp import Stamp
from exports.table2 import write_table2
from service.ledger import LandLedger

pytestmark = pytest.mark.backends("sqlite")  # the sheets' layout, not the store


@pytest.fixture
def varied(app: LandLedger, db_url: str) -> str:
    record_varied(app)
    return db_url


def export(db: str, kind: str, out: Path, *options: str) -> Path:
    code, _, stderr = cli("--db", db, "export", kind, "--out", str(out), *options)
    assert code == 0, stderr
    return out


@pytest.fixture
def umask_002() -> Iterator[None]:
    saved = os.umask(0o002)
    yield
    os.umask(saved)


@pytest.mark.parametrize("kind", ["table2", "ledger", "events"])
def test_exported_files_get_the_users_umask(
    varied: str, tmp_path: Path, kind: str, umask_002: None
) -> None:
    out = export(varied, kind, tmp_path / f"{kind}.{'jsonl' if kind == 'events' else 'xlsx'}")
    assert stat.S_IMODE(out.stat().st_mode) == 0o664  # colleagues in the group can open it
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("name", ["附件2.xls", "附件2.XLS", "附件2.csv", "附件2"])
def test_a_sheet_named_other_than_xlsx_is_refused_in_chinese(
    varied: str, tmp_path: Path, name: str
) -> None:
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / name
    code, stdout, stderr = cli("--db", varied, "export", "table2", "--out", str(out))
    assert code == 1 and stdout == ""
    assert "--out" in stderr and "不是 .xlsx 文件名" in stderr and "附件2.xlsx" in stderr
    assert "Traceback" not in stderr
    assert list(out.parent.iterdir()) == []


# How LibreOffice prints a width unit (the Normal font's digit, in em): measured from its PDFs on
# this project's machine, where 宋体 is missing and its digits are drawn in DejaVu Sans.
DIGIT_EM = {"Times New Roman": 0.505, "宋体": 0.646}
A4_LANDSCAPE = (841.9, 595.3)


def load(path: Path) -> openpyxl.Workbook:
    return openpyxl.load_workbook(path)


def unit_points(book: openpyxl.Workbook) -> float:
    normal = book._named_styles[0].font  # the Normal style: its digit is the width unit
    return DIGIT_EM[normal.name] * normal.sz


def widths(sheet: Worksheet) -> list[float]:
    return [
        sheet.column_dimensions[get_column_letter(i)].width or 8.43
        for i in range(1, sheet.max_column + 1)
    ]


def cjk_width(text: str) -> float:
    """A text's width in units of 5.55 pt at 11 pt: an ideograph 11 pt, anything else at most
    DejaVu Sans's 7 pt (LibreOffice's stand-in for 宋体's Latin)."""
    return sum(11 / 5.55 if ord(ch) > 0x2E7F else 7 / 5.55 for ch in text)


def assert_one_legible_page(path: Path) -> None:
    """附件2 at `path` prints on one A4 landscape page at 8 pt or more, filling it; every number
    and header line fits its column (a number that does not prints as ###)."""
    book = load(path)
    sheet = book.worksheets[0]
    setup = sheet.page_setup
    assert setup.paperSize == 9 and setup.orientation == "landscape"
    assert sheet.sheet_properties.pageSetUpPr.fitToPage
    assert (setup.fitToWidth, setup.fitToHeight) == (1, 1)
    margins = sheet.page_margins
    page_width = A4_LANDSCAPE[0] - 72 * (margins.left + margins.right)
    page_height = A4_LANDSCAPE[1] - 72 * (margins.top + margins.bottom)
    width = sum(widths(sheet)) * unit_points(book)
    height = sum(sheet.row_dimensions[r].height or 15 for r in range(1, sheet.max_row + 1))
    scale = min(1.0, page_width / width, page_height / height)
    smallest = min(c.font.sz for row in sheet.iter_rows() for c in row if c.value is not None)
    assert smallest * scale >= 8, (smallest, scale)
    assert height * scale >= 0.9 * page_height  # the table fills the page, not its top third
    column = widths(sheet)
    spans = {(m.min_row, m.min_col): m.max_col for m in sheet.merged_cells.ranges}
    for row in sheet.iter_rows(4):
        for cell in row:
            at = cell.column - 1
            if isinstance(cell.value, str) and "\n" in cell.value:  # a header's lines
                span = sum(column[at : spans.get((cell.row, cell.column), cell.column)])
                for line in cell.value.split("\n"):
                    assert cjk_width(line) <= span - 0.5, (line, span)
            elif isinstance(cell.value, (int, float)):
                shown = (
                    f"{cell.value * 100:.2f}%"
                    if "%" in cell.number_format
                    else (f"{cell.value:.2f}" if "0.00" in cell.number_format else str(cell.value))
                )
                points = number_points(shown, cell.font.name)
                assert points + 2 <= column[at] * unit_points(book), (shown, cell.coordinate)


# Advance widths in em (Times New Roman / Liberation Serif; Arial Narrow / Liberation Sans Narrow).
DIGIT = {"Times New Roman": (0.5, 0.25, 0.833), "Arial Narrow": (0.456, 0.228, 0.729)}


def number_points(shown: str, font: str) -> float:
    digit, point, percent = DIGIT[font]
    return 11 * sum(point if ch == "." else percent if ch == "%" else digit for ch in shown)


def test_table2_fits_one_a4_landscape_page_at_8_pt_or_more(varied: str, tmp_path: Path) -> None:
    assert_one_legible_page(export(varied, "table2", tmp_path / "t2.xlsx", "--by", "unit"))


# The demo's totals at its cutoff (`landledger demo`: 2,000 cases, 1,846 found by 2022-03-20;
# it records no 补办手续, so 30 here): times 25, a city's figures; times 100, a province's.
DEMO_TOTAL: dict[str, Any] = {
    **dict(found=1846, dismissed=123, violations=1723, major_hazards=175),
    **dict(major_hazards_rectified=45, stopped=995, filed=765, decided=543),
    **dict(referred_police=204, referred_police_persons=418, referred_discipline=16),
    **dict(referred_discipline_persons=11, referred_other=22, permits=30, rectified=423),
    **dict(closed_out=319, open=1404, overdue=207, over_crime_threshold_unreferred=137),
    **dict(area_m2="17226194.00", cultivated_m2="4931648.56", basic_farmland_m2="865203.67"),
    **dict(eco_redline_m2="197943.90", fines_decided_yuan="82470135.00"),
    **dict(fines_paid_yuan="11290085.00", demolished_m2="3101845.00"),
    **dict(restored_m2="1682902.62"),
}


def scaled_stats(times: int, by: str) -> dict[str, Any]:
    """Reader.stats' shape with the demo's figures `times` over; every group is given 12% of
    the total (the demo's largest township has 11%), so each column is at its widest."""

    def scaled(value: int | str, share: Decimal) -> int | str:
        if isinstance(value, int):
            return int(value * times * share)
        return str((Decimal(value) * times * share).quantize(Decimal("0.01")))

    def part(share: Decimal) -> dict[str, Any]:
        figures = {m: scaled(v, share) for m, v in DEMO_TOTAL.items()}
        return {**figures, "rectification_rate": "0.2455"}  # a rate does not scale

    config = load_config()
    keys = config.townships if by == "township" else config.units
    groups = [{"key": key, **part(Decimal("0.12"))} for key in keys]
    return {"by": by, "groups": groups, "total": part(Decimal(1))}


@pytest.mark.parametrize("by", ["township", "unit"])
@pytest.mark.parametrize("times", [1, 25, 100], ids=["demo", "city", "province"])
def test_table2_fits_one_page_at_8_pt_with_a_provinces_figures(
    tmp_path: Path, times: int, by: str
) -> None:
    out = tmp_path / "t2.xlsx"
    stamp = Stamp(date(2022, 3, 20), None, "1:" + "0" * 64, datetime(2022, 3, 21, tzinfo=CHINA))
    write_table2(
        out, scaled_stats(times, by), config=load_config(), contact=("王建国", ""), stamp=stamp
    )
    assert_one_legible_page(out)


LONG_TYPES = ["无规划许可", "占用耕地", "占用永久基本农田", "侵占生态保护红线"]


@pytest.fixture
def long_texts(app: LandLedger, varied: str) -> str:
    """A case whose ref, 文号 and 违法类型 are as long as real ones."""
    record(
        app,
        find("SD-2022-0001", "2022-02-10", violation_types=LONG_TYPES),
        cmd("file_case", "SD-2022-0001", "2022-02-12", case_no="上自然资立〔2022〕0011号"),
        cmd(
            "decide_penalty",
            "SD-2022-0001",
            "2022-02-20",
            decision_no="上自然资罚〔2022〕0073号",
            fine_yuan="1000",
        ),
    )
    return varied


def test_ledger_prints_whose_row_on_every_page_with_a_whole_grid(
    long_texts: str, tmp_path: Path
) -> None:
    sheet = load(export(long_texts, "ledger", tmp_path / "ledger.xlsx")).worksheets[0]
    # 序号, 编号, 乡镇（街道） and the header row on every printed page
    assert sheet.print_title_cols == "$A:$C" and sheet.print_title_rows == "$3:$3"
    header = [str(v).replace("\n", "") for v in next(sheet.iter_rows(3, 3, values_only=True))]
    assert header[:3] == ["序号", "编号", "乡镇（街道）"]
    assert sheet.page_setup.orientation == "landscape" and sheet.page_setup.paperSize == 9
    for row in sheet.iter_rows(3, sheet.max_row, 1, len(header)):
        for cell in row:  # blank cells too: the printed grid has no holes
            sides = (cell.border.left, cell.border.right, cell.border.top, cell.border.bottom)
            assert all(side.style == "thin" for side in sides), cell.coordinate


def test_ledger_cuts_off_no_ref_document_number_or_violation_type(
    long_texts: str, tmp_path: Path
) -> None:
    sheet = load(export(long_texts, "ledger", tmp_path / "ledger.xlsx")).worksheets[0]
    header = [str(v).replace("\n", "") for v in next(sheet.iter_rows(3, 3, values_only=True))]
    row = next(r for r in sheet.iter_rows(4) if r[1].value == "SD-2022-0001")
    width = widths(sheet)
    for name in ("编号", "责令停止通知书编号", "立案编号", "处罚决定书编号", "移送公安文号"):
        at = header.index(name)
        if row[at].value:
            assert cjk_width(row[at].value) <= width[at] - 0.5, name
    at = header.index("违法类型")
    cell = row[at]
    assert cell.value == "、".join(LONG_TYPES) and cell.alignment.wrap_text
    lines = -(-cjk_width(cell.value) // (width[at] - 1))
    assert (sheet.row_dimensions[cell.row].height or 15) >= lines * 14


def test_headers_never_break_inside_their_brackets(long_texts: str, tmp_path: Path) -> None:
    for kind in ("ledger", "problems"):
        sheet = load(export(long_texts, kind, tmp_path / f"{kind}.xlsx")).worksheets[0]
        width = widths(sheet)
        for at, header in enumerate(next(sheet.iter_rows(3, 3, values_only=True))):
            if "（" not in str(header):
                continue
            unit = "（" + str(header).split("（")[1]
            # the unit in brackets fits on a line, and starts one or the header fits whole
            assert cjk_width(unit) <= width[at] - 0.5, (kind, header)
            assert f"\n{unit}" in header or cjk_width(header) <= width[at] - 0.5, (kind, header)


def test_problem_list_wraps_next_step_and_alerts_within_the_page(
    long_texts: str, tmp_path: Path
) -> None:
    sheet = load(export(long_texts, "problems", tmp_path / "problems.xlsx")).worksheets[0]
    setup = sheet.page_setup
    assert setup.orientation == "landscape" and (setup.fitToWidth, setup.fitToHeight) == (1, 0)
    header = [str(v).replace("\n", "") for v in next(sheet.iter_rows(3, 3, values_only=True))]
    width = widths(sheet)
    seen = 0
    for name in ("下一步", "预警"):
        at = header.index(name)
        for row in sheet.iter_rows(4):
            cell = row[at]
            if isinstance(row[0].value, int) and cell.value:
                seen += 1
                assert cell.alignment.wrap_text, (name, cell.coordinate)
                lines = -(-cjk_width(cell.value) // (width[at] - 1))
                assert (sheet.row_dimensions[cell.row].height or 15) >= lines * 14
    assert seen > 5
    scale = 805.9 / (sum(width) * unit_points(sheet.parent))
    assert 11 * scale >= 8  # one page wide, at 8 pt or more


def test_template_notes_rows_are_tall_enough_not_to_overlap(varied: str, tmp_path: Path) -> None:
    notes = load(export(varied, "template", tmp_path / "template.xlsx"))["填表说明"]
    width = widths(notes)
    assert notes.page_setup.orientation == "portrait"
    for row in notes.iter_rows(3):
        cells = [c for c in row if c.value]
        needed = max(-(-cjk_width(c.value) // (width[c.column - 1] - 1)) for c in cells)
        assert all(c.alignment.wrap_text for c in cells)
        assert (notes.row_dimensions[row[0].row].height or 15) >= needed * 14, row[0].value
