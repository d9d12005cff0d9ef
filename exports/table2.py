"""附件2 非法违法建设行为、重大事故隐患统计表: the statistics, one row per township (or unit).

Every number comes from `stats --json` (Reader.stats) for the same cutoff; this module only
converts units for display: ㎡ → 亩 (rounded half-up to two places, 合计 from the summed ㎡),
元 → 万元 (two places), the rate → a percentage cell.
"""

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from domain.events import CampaignConfig
from domain.values import m2_to_mu
from exports import xlsx
from exports.stamp import Stamp

CENT = Decimal("0.01")

# (group, [(header, measure, unit)]); unit: n count, mu 亩, m2 ㎡, wan 万元, rate %.
GROUPS: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = (
    ("发现问题", (("发现", "found", "n"), ("排除", "dismissed", "n"), ("违法", "violations", "n"))),
    (
        "面积（亩）",
        (
            ("占地", "area_m2", "mu"),
            ("耕地", "cultivated_m2", "mu"),
            ("永久基本农田", "basic_farmland_m2", "mu"),
            ("生态保护红线", "eco_redline_m2", "mu"),
        ),
    ),
    (
        "重大事故隐患",
        (("排查", "major_hazards", "n"), ("已整改", "major_hazards_rectified", "n")),
    ),
    (
        "查处",
        (
            ("制止", "stopped", "n"),
            ("立案", "filed", "n"),
            ("处罚决定", "decided", "n"),
            ("罚没款（万元）", "fines_decided_yuan", "wan"),
            ("已缴（万元）", "fines_paid_yuan", "wan"),
        ),
    ),
    (
        "移送",
        (
            ("公安（件）", "referred_police", "n"),
            ("公安（人）", "referred_police_persons", "n"),
            ("纪检监察（件）", "referred_discipline", "n"),
            ("纪检监察（人）", "referred_discipline_persons", "n"),
            ("其他部门（件）", "referred_other", "n"),
        ),
    ),
    (
        "整改",
        (
            ("拆除（㎡）", "demolished_m2", "m2"),
            ("复耕（亩）", "restored_m2", "mu"),
            ("补办手续（宗）", "permits", "n"),
            ("整改到位", "rectified", "n"),
            ("整改率", "rectification_rate", "rate"),
        ),
    ),
    ("销号", (("已销号", "closed_out", "n"), ("未销号", "open", "n"))),
    (
        "预警",
        (("逾期", "overdue", "n"), ("达标未移送公安", "over_crime_threshold_unreferred", "n")),
    ),
)
MEASURE_COLUMNS: tuple[tuple[str, str, str], ...] = tuple(c for _, cols in GROUPS for c in cols)
FIRST_DATA_ROW = 6  # 1 附件2, 2 title, 3 填报单位/截至日期, 4–5 headers
_STYLE = {
    "n": xlsx.NARROW_INT,
    "mu": xlsx.NARROW_DEC2,
    "m2": xlsx.NARROW_DEC2,
    "wan": xlsx.NARROW_DEC2,
    "rate": xlsx.PERCENT,
}
_TOTAL = {
    "n": xlsx.TOTAL_INT,
    "mu": xlsx.TOTAL_DEC2,
    "m2": xlsx.TOTAL_DEC2,
    "wan": xlsx.TOTAL_DEC2,
    "rate": xlsx.TOTAL_PERCENT,
}


def display(measure: str, unit: str, value: Any) -> Any:
    """A `stats --json` value → the cell value of 附件2."""
    if unit == "n":
        return int(value)
    if unit == "mu":
        return m2_to_mu(Decimal(value))
    if unit == "m2":
        return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
    if unit == "wan":
        return (Decimal(value) / 10000).quantize(CENT, rounding=ROUND_HALF_UP)
    return Decimal(value)  # the rate, as a fraction: the cell's format shows a percentage


# Headers printed on several lines, broken between words: the narrowest column the words allow
# (附件2 must fit one A4 page at a legible size), never broken inside a word or a unit's brackets.
_LINES = {
    "序号": "序\n号",
    "永久基本农田": "永久\n基本\n农田",
    "生态保护红线": "生态\n保护\n红线",
    "已整改": "已\n整改",
    "处罚决定": "处罚\n决定",
    "纪检监察": "纪检\n监察",
    "其他部门": "其他\n部门",
    "补办手续": "补办\n手续",
    "整改到位": "整改\n到位",
    "已销号": "已\n销号",
    "未销号": "未\n销号",
    "达标未移送公安": "达标\n未移送\n公安",
}
# The page: A4 landscape, narrow margins; the widths are what the content needs and no more,
# and the rows as tall as the page then allows (the table fills the page, not its top third).
MARGINS = (0.25, 0.25, 0.4, 0.5)
_PAD = 0.6  # a column's width beyond its widest text, in width units


def header_lines(header: str) -> str:
    """'公安（件）' → '公安\n（件）': a unit goes on its own line instead of wrapping anywhere."""
    name, bracket, unit = header.partition("（")
    lines = _LINES.get(name, name)
    return f"{lines}\n{bracket}{unit}" if bracket and name else lines


def unit_lines(header: str) -> str:
    """A measure's header as printed: its unit in half-width brackets, '(件)' a third narrower
    than '（件）' (the unit sets the width of six columns; the header reads the same)."""
    return header_lines(header).replace("（", "(").replace("）", ")")


def _shown(value: Any, unit: str) -> str:
    """A cell as its number format shows it ("0", "0.00", "0.00%")."""
    if unit == "rate":
        return f"{value * 100:.2f}%"
    return str(value) if unit == "n" else f"{value:.2f}"


def write_table2(
    path: str | Path,
    stats: dict[str, Any],
    *,
    config: CampaignConfig,
    contact: tuple[str, str],
    stamp: Stamp,
) -> None:
    """`stats` is Reader.stats(by="township" or "unit") for the stamp's cutoff; `contact` is
    (填报人, 联系电话) from the campaign's 附件1 contacts."""
    by_unit = stats["by"] == "unit"
    first = "单位" if by_unit else "乡镇（街道）"
    groups = stats["groups"]
    names = [str(g["key"]) for g in groups] + header_lines(first).split("\n")
    # A unit's long name (郝家庄自然资源所) wraps after five characters rather than widen the page.
    name_width = min(max(map(xlsx.text_width, names)), xlsx.text_width("郝家庄自然"))
    serial = max(map(xlsx.text_width, header_lines("序号").split("\n")))
    widths = [
        max(serial, xlsx.number_width(str(len(groups)), narrow=True)) + _PAD,
        name_width + _PAD,
    ]
    rows = [*groups, stats["total"]]
    for header, measure, unit in MEASURE_COLUMNS:
        # Wide enough for the longest number and the header's longest line.
        shown = [_shown(display(measure, unit, r[measure]), unit) for r in rows]
        texts = [
            *(xlsx.number_width(text, narrow=True) for text in shown),
            *map(xlsx.text_width, unit_lines(header).split("\n")),
        ]
        widths.append(max(texts) + _PAD)
    widths.append(xlsx.text_width("备注") + _PAD)
    last = len(widths) - 1
    row_height = _row_height(widths, len(rows))
    title = f"{config.district}非法违法建设行为、重大事故隐患统计表"
    with xlsx.Workbook(path, title=title, properties=stamp.properties()) as book:
        sheet = book.sheet(
            "附件2",
            widths=widths,
            freeze=(FIRST_DATA_ROW - 1, 2),
            print_title_rows=(4, 5),
            fit_height=True,
            margins=MARGINS,
            header_footer=("", stamp.footer()),
        )
        sheet.row(["附件2"], xlsx.NOTE_BOLD, height=_FIXED[0])
        sheet.merge(1, 0, 1, 2)
        sheet.row([title], xlsx.TITLE, height=_FIXED[1])
        sheet.merge(2, 0, 2, last)
        middle = last // 2
        filler = [""] * (last - middle - 1)
        sheet.row(
            [
                f"填报单位（盖章）：{config.bureau}",
                *[""] * (middle - 1),
                f"截至日期：{stamp.cutoff_text()}",
                *filler,
            ],
            xlsx.SUBTITLE,
            height=_FIXED[2],
        )
        sheet.merge(3, 0, 3, middle - 1)
        sheet.merge(3, middle, 3, last)
        top = [header_lines("序号"), header_lines(first)]
        below = ["", ""]
        column = 2
        for group, columns in GROUPS:
            top.extend([group] + [""] * (len(columns) - 1))
            below.extend(unit_lines(header) for header, _, _ in columns)
            sheet_merge = (4, column, 4, column + len(columns) - 1)
            column += len(columns)
            if len(columns) > 1:
                sheet.merge(*sheet_merge)
        top.append("备注")
        below.append("")
        sheet.row(top, xlsx.HEADER, height=_FIXED[3])
        sheet.row(below, xlsx.HEADER, height=_FIXED[4])
        for col in (0, 1, last):
            sheet.merge(4, col, 5, col)
        units = [unit for _, _, unit in MEASURE_COLUMNS]
        for number, group in enumerate(groups, start=1):
            cells = [number, group["key"]]
            cells += [display(m, u, group[m]) for _, m, u in MEASURE_COLUMNS]
            styles = [xlsx.NARROW_INT, xlsx.WRAP, *(_STYLE[u] for u in units), xlsx.TEXT]
            sheet.row([*cells, ""], styles, height=row_height)
        total = stats["total"]
        cells = ["合计", ""] + [display(m, u, total[m]) for _, m, u in MEASURE_COLUMNS]
        n = sheet.row(
            [*cells, ""],
            [xlsx.TOTAL_TEXT, xlsx.TOTAL_TEXT, *(_TOTAL[u] for u in units), xlsx.TOTAL_TEXT],
            height=row_height,
        )
        sheet.merge(n, 0, n, 1)
        name, phone = contact
        sheet.row([""], xlsx.DEFAULT, height=_FIXED[5])
        sheet.row(
            [
                f"填报人：{name or '　　　　'}　　联系电话：{phone or '　　　　'}"
                f"　　审核人：　　　　　　填报日期：{stamp.made_at.date().isoformat()}"
            ],
            xlsx.SUBTITLE,
            height=_FIXED[6],
        )
        sheet.merge(n + 2, 0, n + 2, last)
        sheet.row(
            [
                "说明：按案件所在"
                + ("责任单位" if by_unit else "乡镇（街道）")
                + "统计；违法 = 发现 − 排除，其余各项只计违法案件；"
                "面积由㎡换算为亩（1亩 = 10000/15㎡），合计由㎡总数换算；整改率 = 整改到位 ÷ 违法。"
                + stamp.line()
            ],
            xlsx.NOTE,
            height=_FIXED[7],
        )
        sheet.merge(n + 3, 0, n + 3, last)


# The rows around the data: 附件2, title, 填报单位, the two header rows (two and three lines),
# spacer, 填报人, 说明 (two or three lines across the page).
_FIXED = (18.0, 32.0, 22.0, 2 * xlsx.LINE + 4, 3 * xlsx.LINE + 6, 6.0, 22.0, 3 * xlsx.LINE + 4)


def _row_height(widths: list[float], data_rows: int) -> float:
    """The data rows' height: tall enough to fill the page at the scale the widths print at,
    so that fitting the height never shrinks the table below what its width allows."""
    width, height = xlsx.printable_points(MARGINS, landscape=True)
    scale = min(1.0, width / (sum(widths) * xlsx.UNIT_POINTS))
    free = height / scale - sum(_FIXED) - 2  # a little slack for rounding in the programs
    return round(max(xlsx.LINE + 4, min(3 * xlsx.LINE, free / data_rows)), 1)


def contact_for(contacts: dict[str, Any], preferred: str = "执法监察大队") -> tuple[str, str]:
    """填报人 and phone: the brigade's contact (it compiles 附件2), else the first one set."""
    found = contacts.get(preferred) or next(iter(contacts.values()), None)
    if found is None:
        return "", ""
    return found.name, found.office_phone or found.mobile
