"""Write the LibreOffice-saved sheets the import tests read (tests/fixtures/office-*).

    python tools/office_fixtures.py [OUT_DIR]     (default: tests/fixtures)

Needs LibreOffice (`soffice`) and LandLedger importable (PYTHONPATH=. from the repository).
It exports our import template, fills rows the way a township office's copy arrives (dates
as date cells, as text and as Excel serial numbers; phones and ID numbers stored as numbers,
as a spreadsheet program stores them in a General cell), saves that with openpyxl, then has
LibreOffice open and save it again as .xlsx and as .ods: the files the tests read are
LibreOffice's own. The committed copies let CI run without LibreOffice.

- office-progress.{xlsx,ods}: valid rows (O-01..O-03), every date form, a short phone and a
  15-digit ID as numbers (exact, so read back as their digits).
- office-ids.{xlsx,ods}: rows whose 18-digit ID numbers are numbers (rounded to 15 digits by
  the program: each must be refused).
- office-typed.{xlsx,ods}: the template with two rows typed in LibreOffice Calc itself
  (tools/libreoffice_typing.py, through Calc's input line; needs a Python with LibreOffice's
  `uno` module, $LANDLEDGER_UNO_PYTHON or /usr/bin/python3, else these two are not made): the
  template's text columns keep the typed 18-digit IDs as text.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl

from exports.importer import normal_header
from tui.cli import main

HEADER_ROW = 3  # the template's title, stamp line, then the header

VALID: list[dict[str, Any]] = [
    {
        "编号": "O-01",
        "证件号码": "140421198001010011",  # typed as text (the column is formatted as text)
        "联系电话": 13800000000,  # a mobile stored as a number: 11 digits, exact
        "发现日期": datetime(2022, 2, 10),  # a date cell
        "占地面积（亩）": 1.5,
        "制止日期": "2022/2/11",
        "责令停止通知书编号": "上自然资责停〔2022〕7号",
    },
    {
        "编号": "O-02",
        "证件号码": 140421800101001,  # an old 15-digit ID stored as a number: exact
        "发现日期": "2022年2月12日",  # text
        "占地面积（亩）": "2",
    },
    {
        "编号": "O-03",
        "发现日期": 44606,  # an Excel serial number in a General cell: 2022-02-14
        "占地面积（亩）": 0.75,
        "立案日期": date(2022, 2, 16),
        "立案编号": "上自然资立〔2022〕9号",
    },
]
IDS: list[dict[str, Any]] = [
    {"编号": f"O-1{n}", "证件号码": 140421198001010000 + 11 * n, "发现日期": "2022-02-10"}
    for n in (1, 2, 3)
]
TYPED: list[dict[str, str]] = [
    {"编号": "O-21", "证件号码": "140421198001010011", "联系电话": "13800000000"},
    {"编号": "O-22", "证件号码": "140421198001010022", "联系电话": "13900000000"},
]
COMMON = {
    "乡镇（街道）": "苏店镇",
    "线索来源": "巡查",
    "违法类型": "占用耕地",
    "占地面积（亩）": 1,
    "责任单位": "苏店自然资源所",
}


def filled(template: Path, rows: list[dict[str, Any]], out: Path) -> None:
    book = openpyxl.load_workbook(template)
    sheet = book.worksheets[0]
    header = [normal_header(c.value) for c in sheet[HEADER_ROW]]
    first = sheet.max_row + 1  # below the example row
    for offset, cells in enumerate(rows):
        for name, value in {**COMMON, **cells}.items():
            sheet.cell(row=first + offset, column=header.index(name) + 1, value=value)
    book.save(out)


def typed(template: Path, rows: list[dict[str, str]], outputs: list[Path]) -> bool:
    """Type the rows below the example row in LibreOffice Calc; False without `uno`."""
    python = os.environ.get("LANDLEDGER_UNO_PYTHON", "/usr/bin/python3")
    if subprocess.run([python, "-c", "import uno"], capture_output=True).returncode:
        return False
    sheet = openpyxl.load_workbook(template).worksheets[0]
    header = [normal_header(c.value) for c in sheet[HEADER_ROW]]
    cells = [
        [HEADER_ROW + 1 + offset, header.index(name), str(value)]  # from 0: below the example
        for offset, cells in enumerate(rows)
        for name, value in {**COMMON, "发现日期": "2022-02-10", **cells}.items()
    ]
    script = Path(__file__).with_name("libreoffice_typing.py")
    spec = template.with_suffix(".json")
    spec.write_text(json.dumps(cells, ensure_ascii=False), encoding="utf-8")
    subprocess.run(
        [python, str(script), str(template), str(spec), *map(str, outputs)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return True


def write(out_dir: Path) -> list[Path]:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        raise SystemExit("LibreOffice (soffice) is not installed")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        template = work / "template.xlsx"
        code = main(["--db", str(work / "store.db"), "export", "template", "--out", str(template)])
        if code:
            raise SystemExit("export template failed")
        sources = [work / "office-progress.xlsx", work / "office-ids.xlsx"]
        filled(template, VALID, sources[0])
        filled(template, IDS, sources[1])
        made = []
        for kind in ("xlsx", "ods"):
            saved = work / kind
            subprocess.run(
                [
                    soffice,
                    f"-env:UserInstallation=file://{work}/profile",
                    "--headless",
                    "--convert-to",
                    kind,
                    "--outdir",
                    str(saved),
                    *map(str, sources),
                ],
                check=True,
                capture_output=True,
                timeout=300,
            )
            for source in sources:
                target = out_dir / f"{source.stem}.{kind}"
                shutil.copyfile(saved / f"{source.stem}.{kind}", target)
                made.append(target)
        typed_outputs = [out_dir / "office-typed.xlsx", out_dir / "office-typed.ods"]
        if typed(template, TYPED, typed_outputs):
            made.extend(typed_outputs)
    return made


if __name__ == "__main__":
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures")):
        print(path)
