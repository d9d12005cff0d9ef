"""Import: a ledger exported from one store reproduces its cases in an empty one; a second import
appends nothing; what staff type is accepted; a corrupted sheet is refused whole, row by row."""

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from helpers import cli, cmd, find, record, stats
from sheets import both, record_varied

from exports.columns import COLUMNS
from projections.read import Reader
from service.ledger import LandLedger

HEADER = [c.header for c in COLUMNS]


def sheet(
    path: Path, rows: list[list[Any]], header: list[str] | None = None, title: int = 2
) -> Path:
    """A sheet as a township office makes it: merged title rows above the header."""
    book = openpyxl.Workbook()
    ws = book.active
    for n in range(1, title + 1):
        ws.cell(row=n, column=1, value=f"上党区违法用地台账（第{n}行标题）")
        ws.merge_cells(start_row=n, start_column=1, end_row=n, end_column=8)
    ws.append(header or HEADER)
    for row in rows:
        ws.append(row)
    book.save(path)
    return path


def row(header: list[str] = HEADER, /, **cells: Any) -> list[Any]:
    """A ledger row by header name; the rest blank."""
    base = {
        "编号": "T-01",
        "乡镇（街道）": "苏店镇",
        "线索来源": "巡查",
        "发现日期": "2022-02-10",
        "违法类型": "占用耕地",
        "占地面积（亩）": "1.5",
        "责任单位": "苏店自然资源所",
    }
    base.update(cells)
    return [base.get(h) for h in header]


def imported(db: str, path: Path, *options: str) -> tuple[int, str, str]:
    return cli("--db", db, "import", str(path), *options)


def ledger_cells(db: str, tmp_path: Path, name: str) -> list[list[Any]]:
    out = tmp_path / name
    code, _, err = cli("--db", db, "export", "ledger", "--unmasked", "--out", str(out))
    assert code == 0, err
    return both(out)[3:]


def test_export_then_import_reproduces_the_cases(
    app: LandLedger, db_url: str, tmp_path: Path
) -> None:
    source = str(tmp_path / "source.db")
    record_varied(LandLedger(source))
    out = tmp_path / "ledger.xlsx"
    assert cli("--db", source, "export", "ledger", "--unmasked", "--out", str(out))[0] == 0

    code, stdout, stderr = imported(db_url, out)
    assert code == 0, stderr
    assert "新增 8 个案件" in stdout
    # Today's numbers are the same. (A past cutoff may differ: the sheet shows a reopened case's
    # current cycle only, and dates the rectification record by its 整改到位 date.)
    for options in ([], ["--by", "unit"], ["--by", "violation_type"]):
        assert stats(db_url, *options) == stats(source, *options)
    # every column the sheet carries comes back, but 重开日期 and 更正次数 (history, not facts)
    original = ledger_cells(source, tmp_path, "a.xlsx")
    again = ledger_cells(db_url, tmp_path, "b.xlsx")
    skip = {HEADER.index("重开日期"), HEADER.index("更正次数")}
    for left, right in zip(original, again, strict=True):
        assert [v for i, v in enumerate(left) if i not in skip] == [
            v for i, v in enumerate(right) if i not in skip
        ]
    case = app.case("A-03")
    assert case.site.area_m2 == Decimal("100.10") and case.state == "已排除"

    before = app.fingerprint()
    code, stdout, stderr = imported(db_url, out)
    assert code == 0, stderr
    assert "新增 0 个案件" in stdout and "已存在且相同 8 行" in stdout
    assert app.fingerprint() == before


@pytest.mark.backends("sqlite")  # a sheet's validation
def test_what_staff_type_is_accepted(app: LandLedger, db_url: str, tmp_path: Path) -> None:
    header = list(HEADER)
    header[HEADER.index("占地面积（亩）")] = "占地面积 (平方米)"
    header[HEADER.index("罚款（元）")] = "罚款（万元）"
    rows = [
        row(
            header,
            **{
                "编号": "T-01 ",
                "占地面积 (平方米)": "１２００．５",
                "发现日期": datetime(2022, 2, 10),
            },
        ),
        row(
            header,
            **{
                "编号": "T-02",
                "占地面积 (平方米)": 666.67,
                "发现日期": "2022/2/3",
                "乡镇（街道）": "苏店镇  ",
                "违法类型": "占用耕地，无规划许可",
                "立案日期": "2022年2月5日",
                "立案编号": "立２号",
                "处罚决定日期": 44601,  # an Excel date serial: 2022-02-09
                "处罚决定书编号": "罚2",
                "罚款（万元）": "1.25",
                "重大事故隐患": "是",
            },
        ),
    ]
    path = sheet(tmp_path / "typed.xlsx", rows, header)
    code, stdout, stderr = imported(db_url, path)
    assert code == 0, stderr
    assert "新增 2 个案件" in stdout
    first = app.case("T-01")
    assert first.site.area_m2 == Decimal("1200.50") and first.found_on == date(2022, 2, 10)
    second = app.case("T-02")
    assert second.found_on == date(2022, 2, 3) and second.site.township == "苏店镇"
    assert second.site.violation_types == ("占用耕地", "无规划许可")
    assert second.site.major_hazard is True and second.state == "已处罚"
    rows_by_ref = {r.case.ref: r for r in Reader(app).ledger()}
    assert rows_by_ref["T-02"].fine_yuan == Decimal("12500.00")
    assert rows_by_ref["T-02"].decided_on == date(2022, 2, 9)
    assert rows_by_ref["T-02"].case_no == "立２号"  # text stays as typed


@pytest.mark.backends("sqlite")  # a sheet's validation
def test_a_corrupted_sheet_is_refused_whole(app: LandLedger, db_url: str, tmp_path: Path) -> None:
    record(app, find("EXIST-1"))
    rows = [
        row(**{"编号": "C-01"}),  # valid, but must not be written
        row(**{"编号": "C-02", "耕地面积（亩）": "很大"}),
        row(**{"编号": "C-03", "发现日期": "2月30日"}),
        row(**{"编号": "C-04", "乡镇（街道）": "火星镇"}),
        row(**{"编号": "C-05", "耕地面积（亩）": "3"}),  # more cultivated land than the area
        row(**{"编号": "C-06", "立案编号": "立6"}),  # a filing number without its date
        row(**{"编号": "C-07", "销号日期": "2022-02-20"}),  # closed out, never rectified
        row(**{"编号": "C-01"}),  # the same ref twice
        row(**{"编号": "C-09", "证件号码": "110101********1234"}),
        row(**{"编号": "C-10", "状态": "已销号"}),
        row(**{"编号": ""}),
    ]
    path = sheet(tmp_path / "bad.xlsx", rows)
    before = app.fingerprint()
    code, stdout, stderr = imported(db_url, path)
    assert code == 1 and stdout == ""
    lines = stderr.strip().splitlines()
    assert "第5行 耕地面积：“很大”不是数字" in lines
    assert any(x.startswith("第6行 发现日期：“2月30日”不是有效日期") for x in lines)
    assert any(x.startswith("第7行 乡镇（街道）：“火星镇”不在") for x in lines)
    assert any(x.startswith("第8行 耕地面积") and "大于占地面积" in x for x in lines)
    assert "第9行 立案日期：填写了立案编号，立案日期必填" in lines
    assert any(x.startswith("第10行 销号：") and "整改到位" in x for x in lines)
    assert "第11行 编号：“C-01”与第4行重复" in lines
    assert any(x.startswith("第12行 证件号码：") and "遮蔽" in x for x in lines)
    assert any(x.startswith("第13行 状态：表中为“已销号”") for x in lines)
    assert any(x.startswith("第14行 编号：必填") for x in lines)
    assert lines[-1] == f"错误：{path} 有 10 处错误，全部未导入"
    assert app.fingerprint() == before
    assert stats(db_url)["total"]["found"] == 1


def resent(db: str, tmp_path: Path, name: str, **cells: dict[str, Any]) -> Path:
    """The store's ledger as a township sends it back: exported, then cells changed by ref and
    header; a ref not in the sheet is a row added below."""
    out = tmp_path / name
    assert cli("--db", db, "export", "ledger", "--unmasked", "--out", str(out))[0] == 0
    book = openpyxl.load_workbook(out)
    ws = book.worksheets[0]
    rows = {ws.cell(row=n, column=2).value: n for n in range(4, ws.max_row + 1)}
    for ref, changes in cells.items():
        number = rows.get(ref) or ws.max_row + 1
        for name_, value in {"编号": ref, **changes}.items():
            ws.cell(row=number, column=HEADER.index(name_) + 1, value=value)
    book.save(out)
    return out


def progressing(app: LandLedger) -> None:
    record(
        app,
        find("T-01"),
        cmd("stop", "T-01", "2022-02-11", order_no="停1", outcome="停工"),
        cmd("file_case", "T-01", "2022-02-12", case_no="立1"),
        cmd("decide_penalty", "T-01", "2022-02-15", decision_no="罚1", fine_yuan="5000"),
        cmd(
            "order_rectification", "T-01", "2022-02-16", measures=["拆除复耕"], due_on="2022-03-01"
        ),
        cmd("record_rectification", "T-01", "2022-02-20", demolished_m2="300"),
    )


def test_a_resent_sheet_carries_a_known_cases_progress(
    app: LandLedger, db_url: str, tmp_path: Path
) -> None:
    progressing(app)
    path = resent(
        db_url,
        tmp_path,
        "resent.xlsx",
        **{
            "T-01": {
                "拆除面积（㎡）": 500,
                "整改到位日期": "2022-03-01",
                "销号日期": "2022-03-05",
                "标记": "挂牌督办",
            },
            "T-02": dict(zip(HEADER, row(**{"编号": "T-02"}), strict=True)),
        },
    )
    code, stdout, stderr = imported(db_url, path)
    assert code == 0, stderr
    assert "新增 1 个案件、补记 1 个已有案件的进展（5 个事件）" in stdout
    events = [(e.on, e.TITLE) for e in app.history("T-01")][-4:]
    assert events == [
        (date(2022, 3, 1), "整改记录"),  # the 200㎡ more demolished, dated by 整改到位
        (date(2022, 3, 1), "整改到位"),
        (date(2022, 3, 5), "销号"),
        (date(2022, 2, 10), "标记"),  # a sheet's 标记 is dated by 发现
    ]
    assert app.case("T-01").demolished_m2 == Decimal(500) and app.case("T-01").state == "已销号"
    assert app.case("T-02").site.area_m2 == Decimal("1000.00")

    before = app.fingerprint()
    code, stdout, stderr = imported(db_url, path)
    assert code == 0 and "新增 0 个案件（0 个事件）；已存在且相同 2 行" in stdout, stderr
    assert app.fingerprint() == before


def test_a_row_that_contradicts_the_store_writes_nothing_of_the_sheet(
    app: LandLedger, db_url: str, tmp_path: Path
) -> None:
    progressing(app)
    path = resent(
        db_url,
        tmp_path,
        "contradicts.xlsx",
        **{
            "T-01": {
                "占地面积（亩）": 2,
                "制止日期": "2022-02-12",
                "拆除面积（㎡）": 100,
                "整改到位日期": "2022-03-01",
            },
            "T-02": dict(zip(HEADER, row(**{"编号": "T-02"}), strict=True)),
        },
    )
    before = app.fingerprint()
    code, stdout, stderr = imported(db_url, path)
    assert (code, stdout) == (1, ""), stderr
    assert stderr.splitlines() == [
        "第4行 占地面积：库中 1.50亩，表中 2.00亩（编号 T-01 已记录，导入不更改已记录的事实；"
        "如需更改请用更正（correct_site）记录并写明原因）",
        "第4行 制止日期：库中 2022-02-11，表中 2022-02-12（编号 T-01 已记录，事件记录后不能更改；"
        "请核对表格，或导出最新台账后再填写）",
        "第4行 拆除面积：库中 300.00㎡，表中 100.00㎡（编号 T-01 已记录，事件记录后不能更改；"
        "请核对表格，或导出最新台账后再填写）",
        f"错误：{path} 有 3 处错误，全部未导入",
    ]
    assert app.fingerprint() == before
    assert app.case("T-01").state == "整改中"


@pytest.mark.backends("sqlite")  # a sheet's validation
def test_dry_run_writes_nothing(app: LandLedger, db_url: str, tmp_path: Path) -> None:
    app.campaign()
    path = sheet(tmp_path / "ok.xlsx", [row(), row(**{"编号": "T-02", "制止日期": "2022-02-11"})])
    before = app.fingerprint()
    code, stdout, stderr = imported(db_url, path, "--dry-run")
    assert code == 0, stderr
    assert "试导入（未写入）：将新增 2 个案件（3 个事件）" in stdout
    assert app.fingerprint() == before


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ([h for h in HEADER if h != "发现日期"], "缺少必填列 发现日期"),
        (["序号", "名称"], "没有找到台账表头"),
    ],
)
def test_a_sheet_without_the_ledger_header_is_refused(
    db_url: str, tmp_path: Path, header: list[str], message: str
) -> None:
    path = sheet(tmp_path / "h.xlsx", [], header)
    code, _, stderr = imported(db_url, path)
    assert code == 1 and message in stderr


@pytest.mark.backends("sqlite")  # a file's validation
def test_not_an_xlsx_file(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "x.xlsx"
    path.write_text("not a workbook")
    code, _, stderr = imported(db_url, path)
    assert code == 1 and "不是 xlsx 或 ods 工作簿" in stderr
    assert imported(db_url, tmp_path / "missing.xlsx")[0] == 1
