"""Issue 14: sheets as offices save them. Text columns are text in every sheet we write; a number
where text belongs is refused, never stored altered; .xlsx and .ods saved by LibreOffice are read
(tests/fixtures/office-*, written by tools/office_fixtures.py; made afresh where LibreOffice is
installed); a file that is no workbook gets a Chinese message."""

import io
import re
import shutil
import subprocess
import sys
import zipfile
from datetime import date
from pathlib import Path

import openpyxl
import pytest
from helpers import cli, find, record
from openpyxl.utils import get_column_letter
from sheets import record_varied
from test_import import HEADER, imported, row, sheet

from exports.columns import COLUMNS
from exports.importer import normal_header
from projections.read import Reader
from service.ledger import LandLedger

FIXTURES = Path(__file__).parent / "fixtures"
TEXT_COLUMNS = [i for i, c in enumerate(COLUMNS) if c.kind in ("text", "list")]
ROUNDED = "是数字，应为文本（表格程序只保留 15 位有效数字，长号码已被改动）"


# 1. Text columns are text ------------------------------------------------------------------------


@pytest.mark.backends("sqlite")  # the files written
@pytest.mark.parametrize("kind", ["template", "ledger"])
def test_text_columns_are_text_in_the_rows_staff_fill_in(
    app: LandLedger, db_url: str, tmp_path: Path, kind: str
) -> None:
    record(app, find("T-01", party_id_no="140421198001010011"))
    out = tmp_path / f"{kind}.xlsx"
    assert cli("--db", db_url, "export", kind, "--unmasked", "--out", str(out))[0] == 0
    ws = openpyxl.load_workbook(out).worksheets[0]
    assert [normal_header(c.value) for c in ws[3]] == HEADER  # printed headers may break lines
    for index in TEXT_COLUMNS:
        letter = get_column_letter(index + 1)
        # a cell typed below the written rows takes its column's format: text, so a typed
        # 18-digit ID stays its digits
        assert ws.column_dimensions[letter].number_format == "@", COLUMNS[index].name
        written = ws.cell(row=4, column=index + 1)
        assert written.value is None or written.number_format == "@", COLUMNS[index].name
    date_column = get_column_letter(HEADER.index("发现日期") + 1)
    assert ws.column_dimensions[date_column].number_format != "@"  # dates stay dates
    if kind == "ledger":
        assert ws.cell(row=4, column=HEADER.index("证件号码") + 1).value == "140421198001010011"


@pytest.mark.backends("sqlite")  # a sheet's validation
@pytest.mark.parametrize("saved", ["xlsx", "ods"])
def test_ids_that_a_spreadsheet_program_turned_into_numbers_are_refused(
    db_url: str, tmp_path: Path, saved: str
) -> None:
    """LibreOffice stored three different 18-digit IDs as numbers: all read 140421198001010000."""
    before = LandLedger(db_url).fingerprint()
    code, out, err = imported(db_url, FIXTURES / f"office-ids.{saved}")
    assert (code, out) == (1, ""), err
    lines = err.splitlines()
    for number in (5, 6, 7):  # title, stamp line, header, the template's example row
        assert f"第{number}行 证件号码：“140421198001010000”{ROUNDED}" in "\n".join(lines)
    assert lines[-1].endswith("有 3 处错误，全部未导入")
    assert LandLedger(db_url).fingerprint() == before


def _typed_ids_stay_text(app: LandLedger, db_url: str, path: Path) -> None:
    code, out, err = imported(db_url, path)
    assert code == 0 and "新增 2 个案件" in out, err
    for ref, id_no, phone in (
        ("O-21", "140421198001010011", "13800000000"),
        ("O-22", "140421198001010022", "13900000000"),
    ):
        site = app.case(ref).site
        assert (site.party_id_no, site.party_phone) == (id_no, phone)


@pytest.mark.parametrize("saved", ["xlsx", "ods"])
def test_ids_typed_into_the_template_in_libreoffice_stay_text(
    app: LandLedger, db_url: str, saved: str
) -> None:
    """tools/libreoffice_typing.py typed them through Calc's input line: in a General cell an
    18-digit ID becomes a rounded number; in the template's text column it stays its digits."""
    _typed_ids_stay_text(app, db_url, FIXTURES / f"office-typed.{saved}")


@pytest.mark.backends("sqlite")  # a sheet's validation
def test_a_number_in_a_text_column_is_read_back_only_when_exact(
    app: LandLedger, db_url: str, tmp_path: Path
) -> None:
    rows = [
        row(编号="N-01", 证件号码=140421198001010011),  # saved as 1.4042119800101e+17
        row(编号="N-02", 证件号码=1234567890123456),  # 16 digits: a program keeps 15
        row(编号="N-03", 立案日期="2022-02-12", 立案编号=12.5),
        row(编号="N-04", 联系电话=13800000000, 证件号码=140421800101001),
        row(编号=20220001),
    ]
    path = sheet(tmp_path / "numbers.xlsx", rows)
    code, _, err = imported(db_url, path)
    assert code == 1
    assert f"第4行 证件号码：“140421198001010000”{ROUNDED}" in err
    assert f"第5行 证件号码：“1234567890123456”{ROUNDED}" in err
    assert f"第6行 立案编号：“12.5”{ROUNDED}" in err
    assert "有 3 处错误" in err and "第7行" not in err and "第8行" not in err

    path = sheet(tmp_path / "short.xlsx", rows[3:])
    code, _, err = imported(db_url, path)
    assert code == 0, err
    site = app.case("N-04").site
    assert (site.party_phone, site.party_id_no) == ("13800000000", "140421800101001")
    assert app.case("20220001").ref == "20220001"


# 3. What offices save -----------------------------------------------------------------------------


def _imports_the_office_sheet(app: LandLedger, db_url: str, path: Path) -> None:
    code, out, err = imported(db_url, path)
    assert code == 0, err
    assert "新增 3 个案件（5 个事件）" in out and "跳过示例行 1 行" in out
    rows = {r.case.ref: r for r in Reader(app).ledger()}
    first, second, third = rows["O-01"], rows["O-02"], rows["O-03"]
    assert first.case.found_on == date(2022, 2, 10)  # a date cell
    assert first.stopped_on == date(2022, 2, 11) and first.order_no == "上自然资责停〔2022〕7号"
    assert first.case.site.party_id_no == "140421198001010011"
    assert first.case.site.party_phone == "13800000000"  # a number, exact: its digits
    assert second.case.found_on == date(2022, 2, 12)  # text
    assert second.case.site.party_id_no == "140421800101001"
    assert third.case.found_on == date(2022, 2, 14)  # an Excel serial number
    assert third.filed_on == date(2022, 2, 16) and third.case_no == "上自然资立〔2022〕9号"
    assert str(third.case.site.area_m2) == "500.00"  # 0.75 亩
    before = app.fingerprint()
    code, out, err = imported(db_url, path)
    assert code == 0 and "新增 0 个案件" in out and "已存在且相同 3 行" in out, err
    assert app.fingerprint() == before


@pytest.mark.parametrize("saved", ["xlsx", "ods"])
def test_sheets_saved_by_libreoffice_are_read(
    app: LandLedger, db_url: str, tmp_path: Path, saved: str
) -> None:
    _imports_the_office_sheet(app, db_url, FIXTURES / f"office-progress.{saved}")


@pytest.mark.backends("sqlite")  # the files read; the committed ones run on both backends
@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice is not installed")
def test_sheets_saved_by_this_machines_libreoffice_are_read(
    app: LandLedger, db_url: str, tmp_path: Path
) -> None:
    tool = Path(__file__).parents[1] / "tools" / "office_fixtures.py"
    made = subprocess.run(
        [sys.executable, str(tool), str(tmp_path / "fresh")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert made.returncode == 0, made.stderr
    for saved in ("xlsx", "ods"):
        store = str(tmp_path / f"fresh-{saved}.db")
        fresh = LandLedger(store)
        try:
            _imports_the_office_sheet(fresh, store, tmp_path / "fresh" / f"office-progress.{saved}")
        finally:
            fresh.close()
        code, _, err = imported(store, tmp_path / "fresh" / f"office-ids.{saved}")
        assert code == 1 and err.count(ROUNDED) == 3, err
        typed = tmp_path / "fresh" / f"office-typed.{saved}"
        if typed.exists():  # made where LibreOffice's Python module `uno` is installed
            store = str(tmp_path / f"typed-{saved}.db")
            fresh = LandLedger(store)
            try:
                _typed_ids_stay_text(fresh, store, typed)
            finally:
                fresh.close()


def _zip(entries: dict[str, str] | dict[str, bytes]) -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for name, text in entries.items():
            archive.writestr(name, text)
    return data.getvalue()


def _damaged(path: Path) -> bytes:
    """The workbook with its first sheet's XML cut short."""
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    parts["xl/worksheets/sheet1.xml"] = parts["xl/worksheets/sheet1.xml"][:3000]
    return _zip(parts)


@pytest.mark.backends("sqlite")  # a file's validation
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600),
            "这是 Excel 97-2003（.xls）或加密的工作簿",
        ),
        ("编号,乡镇（街道）\nT-01,苏店镇\n".encode(), "不是 xlsx 或 ods 工作簿"),
        (_zip({"readme.txt": "a zip"}), "不是有效的 xlsx 工作簿"),
        (_zip({"mimetype": "application/vnd.oasis.opendocument.spreadsheet"}), "ods 文件已损坏"),
        (_damaged(FIXTURES / "office-progress.xlsx"), "xlsx 文件已损坏"),
        (None, "是一个文件夹，不是表格文件"),
    ],
    ids=["xls", "csv", "zip", "broken-ods", "cut-sheet", "folder"],
)
def test_a_file_that_is_no_workbook_is_refused_in_chinese(
    db_url: str, tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "sheet.xlsx"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    code, out, err = imported(db_url, path)
    assert (code, out) == (1, "")
    assert err.startswith("错误：") and expected in err and err.count("\n") == 1, err
    assert re.search("[A-Za-z]{3,}", err.replace(str(path), "")) is None or "另存为" in err, err


@pytest.mark.backends("sqlite")  # a file's reading
def test_a_workbook_is_known_by_its_content_not_its_name(db_url: str, tmp_path: Path) -> None:
    ods = tmp_path / "from-libreoffice.xlsx"  # an .ods renamed
    shutil.copyfile(FIXTURES / "office-progress.ods", ods)
    xlsx = tmp_path / "sent-by-mail.tmp"
    shutil.copyfile(FIXTURES / "office-progress.xlsx", xlsx)
    for path in (ods, xlsx):
        code, out, err = imported(db_url, path, "--dry-run")
        assert code == 0 and "将新增 3 个案件" in out, err


@pytest.mark.backends("sqlite")  # a file's reading
def test_a_workbook_that_states_a_wrong_size_is_read_whole(db_url: str, tmp_path: Path) -> None:
    """Some programs write <dimension ref="A1"/>: every row below it is still read."""
    path = sheet(tmp_path / "sized.xlsx", [row(), row(编号="T-02")])
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    name = "xl/worksheets/sheet1.xml"
    parts[name] = re.sub(rb'<dimension ref="[^"]*" ?/>', b'<dimension ref="A1"/>', parts[name])
    assert b'<dimension ref="A1"/>' in parts[name]
    with zipfile.ZipFile(path, "w") as archive:
        for part, data in parts.items():
            archive.writestr(part, data)
    code, out, err = imported(db_url, path, "--dry-run")
    assert code == 0 and "将新增 2 个案件" in out, err


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice is not installed")
def test_a_ledger_saved_again_by_libreoffice_reimports_as_the_same_cases(
    app: LandLedger, db_url: str, tmp_path: Path
) -> None:
    record_varied(app)
    exported = tmp_path / "ledger.xlsx"
    assert cli("--db", db_url, "export", "ledger", "--out", str(exported))[0] == 0
    before = app.fingerprint()
    for kind in ("xlsx", "ods"):
        subprocess.run(
            [
                "soffice",
                f"-env:UserInstallation=file://{tmp_path}/profile",
                "--headless",
                "--convert-to",
                kind,
                "--outdir",
                str(tmp_path / kind),
                str(exported),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        code, out, err = imported(db_url, tmp_path / kind / f"ledger.{kind}")
        assert code == 0 and "新增 0 个案件（0 个事件）；已存在且相同 8 行" in out, err
    assert app.fingerprint() == before
