"""台账 (the ledger) and its import template: one row per case, every ledger column."""

import math
from collections.abc import Callable, Collection, Iterable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from domain.events import CampaignConfig
from domain.values import masked
from exports import xlsx
from exports.columns import BY_KEY, COLUMNS, GETTERS, PERSONAL, Column
from exports.stamp import Stamp
from projections.ledger import LedgerRow

Progress = Callable[[int, int], None]

TITLE_SPAN = 8  # the title is merged over the first columns, where the eye starts
HEADER_ROW = 3
LAND_AREAS = {"area_m2", "cultivated_m2", "basic_farmland_m2", "eco_redline_m2"}
_STYLE = {
    "text": xlsx.TEXT,
    "list": xlsx.TEXT,
    "date": xlsx.DATE,
    "mu": xlsx.DEC2,
    "m2": xlsx.DEC2,
    "yuan": xlsx.MONEY,
    "int": xlsx.INT,
    "bool": xlsx.CENTER,
    "number": xlsx.NUMBER,
}
# 违法类型 lists up to six types: it wraps within its column, its row as tall as that needs. (A
# program does not size a row to its wrapped text on opening, and measuring every cell of 200,000
# rows would cost seconds: the other columns are wide enough for what they hold.)
WRAPPED = "violation_types"
_EXAMPLE_STYLE = {"date": xlsx.EXAMPLE_DATE, "mu": xlsx.EXAMPLE_DEC2, "m2": xlsx.EXAMPLE_DEC2}
_MU_PER_M2 = Decimal(15) / Decimal(10000)  # exact: 0.0015


def cell(column: Column, value: Any) -> Any:
    """A stored value → what the cell holds. 亩 cells hold the exact 亩 (㎡ × 0.0015, at most six
    places) shown with two, so a sheet read back gives the same ㎡."""
    kind = column.kind
    if value is None:
        return None
    if kind == "mu":
        if not value and column.key not in LAND_AREAS:
            return None
        return Decimal(format((value * _MU_PER_M2).normalize(), "f")) if value else Decimal(0)
    if kind in ("m2", "yuan", "int"):
        return value if value else None
    if kind == "list":
        return "、".join(value)
    if kind == "bool":
        return "是" if value else "否"
    return value


def write_ledger(
    path: str | Path,
    rows: Collection[LedgerRow],
    *,
    config: CampaignConfig,
    stamp: Stamp,
    unmasked: bool = False,
    progress: Progress | None = None,
) -> int:
    """Write the ledger; returns the number of case rows.

    The hot loop of a province-scale export (200,000 rows × 61 columns): each column reads the
    row with a C-level getter, skips when blank, and fills a prebuilt cell template."""
    title = f"{config.district}违法用地台账"
    total = len(rows)
    with _workbook(path, title, stamp) as book:
        note = "；含完整个人信息，注意保密" if unmasked else "；个人信息已遮蔽"
        sheet = _ledger_sheet(book, "台账", title, stamp, note=note)
        plan = []
        dates: dict[date, int] = {}
        for index, column in enumerate(COLUMNS[1:], start=1):
            get = GETTERS[column.key]
            if not unmasked and column.key in PERSONAL:
                get = _masked(get, column.key)
            code = _CODE[column.kind]
            if column.key in LAND_AREAS:
                code = _MU_ZERO  # a land area is shown even when 0
            elif column.key in _FEW_VALUES or column.kind in ("list", "bool"):
                code = _CACHED  # escaped (and joined) once per distinct value
            text = column.kind in ("text", "list", "bool")
            style = xlsx.WRAP if column.key == WRAPPED else _STYLE[column.kind]
            template = sheet.cell_template(index, style, text=text)
            blank = sheet.blank_cell(style)
            if code == _DATE:
                code = _CACHED  # one cache for every date column: few distinct days
            plan.append((get, code, template, blank, dates if column.kind == "date" else {}))
        seq = sheet.cell_template(0, xlsx.INT, text=False)
        wrapped, wrap_width = GETTERS[WRAPPED], BY_KEY[WRAPPED].width - 1
        heights: dict[Any, float | None] = {}
        escape = xlsx.text_xml
        serial = xlsx.excel_date
        mu = _MU_PER_M2
        for count, row in enumerate(rows, start=1):
            n = sheet.next_row()
            parts = [seq % (n, count)]
            add = parts.append
            for get, code, template, blank, cache in plan:
                v = get(row)
                if not v:
                    if code == _MU_ZERO and v is not None:
                        add(template % (n, 0))
                    else:
                        add(blank)  # empty, with its border: the printed grid is whole
                    continue
                if code == _CACHED:
                    shown = cache.get(v)
                    if shown is None:
                        shown = _shown(v, escape, serial)
                        if len(cache) < 5000:  # names and dates repeat; keep memory flat
                            cache[v] = shown
                    add(template % (n, shown))
                elif code == _TEXT:
                    add(template % (n, escape(v)))
                elif code == _NUMBER:
                    add(template % (n, v))
                else:  # 亩: ㎡ × 0.0015 is exact (at most six places) and never exponent form
                    add(template % (n, v * mu))
            listed = wrapped(row)
            height = heights.get(listed, 0)
            if height == 0:
                lines = math.ceil(xlsx.text_width("、".join(listed)) / wrap_width)
                height = heights[listed] = lines * xlsx.LINE + 3 if lines > 1 else None
            sheet.raw_row(n, "".join(parts), height=height)
            if progress is not None and count % 5000 == 0:
                progress(count, total)
        if progress is not None:
            progress(total, total)
    return total


_TEXT, _DATE, _NUMBER, _CACHED, _MU, _MU_ZERO = range(6)
_CODE = {
    "text": _TEXT,
    "date": _DATE,
    "m2": _NUMBER,
    "yuan": _NUMBER,
    "int": _NUMBER,
    "number": _NUMBER,
    "list": _CACHED,
    "mu": _MU,
    "bool": _CACHED,
}
# Text columns with few distinct values (names from the data file, enumerations, states).
_FEW_VALUES = {
    "township",
    "village",
    "party_kind",
    "source",
    "land_use",
    "unit",
    "state",
    "stop_outcome",
    "dismiss_reason",
}


def _shown(value: Any, escape: Callable[[str], str], serial: Callable[[date], int]) -> Any:
    if isinstance(value, date):
        return serial(value)
    if value is True:
        return "是"
    return escape("、".join(value) if isinstance(value, tuple) else value)


def _masked(get: Callable[[LedgerRow], Any], key: str) -> Any:
    def hidden(row: LedgerRow) -> Any:
        return masked(key, get(row))

    return hidden


def write_template(
    path: str | Path, *, config: CampaignConfig, stamp: Stamp, example: dict[str, Any]
) -> None:
    """An empty ledger with one example row (grey, skipped by the import) and a notes sheet."""
    title = f"{config.district}违法用地台账（填报模板）"
    with _workbook(path, title, stamp) as book:
        note = "；填表说明见“填表说明”工作表；编号以“示例”开头的行导入时跳过"
        sheet = _ledger_sheet(book, "台账", title, stamp, note=note)
        styles = [_EXAMPLE_STYLE.get(c.kind, xlsx.EXAMPLE) for c in COLUMNS]
        sheet.row([cell(c, example.get(c.key)) for c in COLUMNS], styles)
        widths = [20, 16, 60]  # fits a portrait A4 page at 100%
        notes = book.sheet(
            "填表说明",
            widths=widths,
            landscape=False,
            fit_height=True,
            header_footer=("", stamp.footer()),
        )
        notes.row(["填表说明"], xlsx.TITLE, height=28)
        notes.merge(1, 0, 1, 2)
        lines = iter(_notes(config))
        notes.row(list(next(lines)), xlsx.HEADER, height=xlsx.LINE + 6)
        for line in lines:
            # Each row as tall as its longest cell wrapped in its column: rows never overlap.
            count = max(
                math.ceil(xlsx.text_width(t) / (w - 1)) for t, w in zip(line, widths, strict=True)
            )
            notes.row(list(line), xlsx.WRAP, height=max(1, count) * xlsx.LINE + 5)


def _workbook(path: str | Path, title: str, stamp: Stamp) -> xlsx.Workbook:
    return xlsx.Workbook(path, title=title, properties=stamp.properties())


def _ledger_sheet(
    book: xlsx.Workbook, name: str, title: str, stamp: Stamp, *, note: str
) -> xlsx.Sheet:
    sheet = book.sheet(
        name,
        widths=[c.width for c in COLUMNS],
        freeze=(HEADER_ROW, 3),
        print_title_rows=(HEADER_ROW, HEADER_ROW),
        print_title_columns=3,  # 序号, 编号, 乡镇（街道）: every printed page says whose row it is
        fit_width=False,
        header_footer=("", stamp.footer()),
        column_styles=[xlsx.TEXT_COLUMN if _STYLE[c.kind] == xlsx.TEXT else 0 for c in COLUMNS],
    )
    sheet.row([title], xlsx.TITLE, height=28)
    sheet.merge(1, 0, 1, TITLE_SPAN - 1)
    sheet.row([stamp.line() + note], xlsx.SUBTITLE)
    sheet.merge(2, 0, 2, TITLE_SPAN - 1)
    sheet.row(
        [xlsx.fit_header(c.header, c.width) for c in COLUMNS], xlsx.HEADER, height=3 * xlsx.LINE + 4
    )
    sheet.autofilter(HEADER_ROW, 0, len(COLUMNS) - 1)
    return sheet


def example_row(config: CampaignConfig, on: date) -> dict[str, Any]:
    """The template's filled example: a case carried through filing, penalty and rectification."""
    return {
        "seq": 1,
        "ref": "示例-0001",
        "township": config.townships[0],
        "village": "东村",
        "location": "东村村委会南200米",
        "project_name": "某物流仓储项目",
        "party_name": "某某物流有限公司",
        "party_kind": "单位",
        "party_id_no": "91140400MA0XXXXXXX",
        "party_phone": "13800000000",
        "source": "卫片",
        "found_on": on,
        "violation_types": ("无规划许可", "占用耕地"),
        "land_use": "仓储",
        "area_m2": Decimal("2000.00"),
        "cultivated_m2": Decimal("1333.33"),
        "major_hazard": False,
        "unit": config.units[0],
        "state": "整改中",
        "stopped_on": on,
        "order_no": "上自然资责停〔2022〕1号",
        "stop_outcome": "停工",
        "filed_on": on,
        "case_no": "上自然资立〔2022〕1号",
        "handlers": ("张三", "李四"),
        "decided_on": on,
        "decision_no": "上自然资罚〔2022〕1号",
        "fine_yuan": Decimal("20000.00"),
        "ordered_on": on,
        "measures": ("拆除复耕", "罚款"),
        "due_on": on,
        "demolished_m2": Decimal("500.00"),
        "fine_paid_yuan": Decimal("10000.00"),
        "note": "示例行：编号以“示例”开头的行导入时跳过",
    }


def _notes(config: CampaignConfig) -> Iterable[tuple[str, str, str]]:
    from domain.values import (
        Agency,
        DismissReason,
        FlagKind,
        Measure,
        PartyKind,
        Source,
        StopOutcome,
        ViolationType,
    )

    def choices(kind: Any) -> str:
        return "、".join(v for v in kind.__args__ if v)

    yield ("列", "是否必填", "说明")
    yield ("编号", "必填", "案件编号（图斑编号或本单位序号），全区唯一；再次导入时按编号识别案件")
    yield (
        "证件号码、电话、编号、文号",
        "",
        "文本列：请保持“文本”格式，18 位证件号码存成数字会丢失末几位，导入时拒收",
    )
    yield ("乡镇（街道）", "必填", "、".join(config.townships))
    yield ("责任单位", "必填", "、".join(config.units))
    yield ("线索来源", "必填", choices(Source))
    yield ("发现日期", "必填", "日期可写 2022-02-10、2022/2/10、2022年2月10日，或 Excel 日期")
    yield ("违法类型", "必填", "一项或多项，用顿号分隔：" + choices(ViolationType))
    yield ("占地面积（亩）", "必填", "面积列可用亩或㎡：表头写“（亩）”或“（㎡）”；数字可用全角")
    yield ("耕地、永久基本农田、生态保护红线", "选填", "耕地 ≤ 占地，基本农田 ≤ 耕地，红线 ≤ 占地")
    yield ("当事人类型", "选填", choices(PartyKind))
    yield ("重大事故隐患", "选填", "是 或 否（空白为否）")
    yield ("制止结果", "选填", choices(StopOutcome))
    yield ("排除原因", "填排除日期时必填", choices(DismissReason))
    yield ("立案编号", "填立案日期时必填", "")
    yield (
        "处罚决定书编号",
        "填处罚决定日期时必填",
        "罚款、没收违法所得以元为单位（可写“万元”表头）",
    )
    yield ("移送其他部门", "选填", choices(Agency) + "（公安、纪检监察各有专列）")
    yield ("整改措施、整改期限", "填整改要求日期时必填", "整改措施：" + choices(Measure))
    yield (
        "拆除、复耕、已缴罚没款、补办",
        "选填",
        "累计数；按整改到位日期（或整改要求日期）记一次整改",
    )
    yield ("整改到位日期、销号日期", "选填", "先整改到位，后销号")
    yield ("标记", "选填", choices(FlagKind))
    yield ("状态", "可不填", "由日期列推出；填写时须与日期列一致")
    yield ("序号、重开日期、更正次数", "不导入", "由系统生成")
    yield (
        "导入规则",
        "",
        "整表校验，有一处错误则全部不写入，按行列出错误；同一张表再次导入不会重复写入；"
        "编号已存在的行：库中没有的新进展（如新填的整改到位日期）按表中日期补记，"
        "与库中已记录的内容不同则为错误，更改已记录的现场信息请用更正（correct_site）并写明原因",
    )
