"""问题清单 (open problems by jurisdiction) and 附件1 专项行动联络人."""

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from domain.events import CampaignConfig, ContactSet
from domain.values import m2_to_mu, masked
from exports import xlsx
from exports.stamp import Stamp
from projections.problems import Problem

# Printed on landscape pages one wide: the long texts wrap within their columns (each row as
# tall as its longest), so 下一步 and 预警 stay inside the table at about 8 pt.
PROBLEM_COLUMNS: tuple[tuple[str, float, int], ...] = (
    ("序号", 5, xlsx.INT),
    ("编号", 16, xlsx.TEXT),
    ("乡镇（街道）", 10, xlsx.WRAP),
    ("村", 8, xlsx.TEXT),
    ("项目名称", 14, xlsx.WRAP),
    ("违法类型", 16, xlsx.WRAP),
    ("占地（亩）", 8, xlsx.DEC2),
    ("耕地（亩）", 8, xlsx.DEC2),
    ("责任单位", 12, xlsx.WRAP),
    ("状态", 7, xlsx.CENTER),
    ("发现日期", 10, xlsx.DATE),
    ("下一步", 22, xlsx.WRAP),
    ("整改期限", 10, xlsx.DATE),
    ("逾期天数", 6, xlsx.INT),
    ("预警", 24, xlsx.WRAP),
    ("标记", 9, xlsx.WRAP),
)
MARGINS = (0.25, 0.25, 0.5, 0.6)


def _across(text: str, columns: Sequence[tuple[str, float, int]]) -> float:
    """The height of a row holding `text` wrapped across the whole table, none of it cut off:
    a line more than its width needs, as the fingerprint is a word no line breaks inside."""
    lines = math.ceil(xlsx.text_width(text) / (sum(w for _, w, _ in columns) - 2))
    return (lines + 1) * xlsx.LINE + 4


def _height(cells: list[Any]) -> float | None:
    """A row as tall as its longest wrapped text needs; None for one line."""
    lines = max(
        math.ceil(xlsx.text_width(value) / (width - 1))
        for value, (_, width, style) in zip(cells, PROBLEM_COLUMNS, strict=True)
        if style == xlsx.WRAP and isinstance(value, str)
    )
    return lines * xlsx.LINE + 3 if lines > 1 else None


def problem_cells(number: int, problem: Problem) -> list[Any]:
    row = problem.row
    site = row.case.site
    return [
        number,
        row.case.ref,
        site.township,
        site.village,
        site.project_name or site.location,
        "、".join(site.violation_types),
        m2_to_mu(site.area_m2),
        m2_to_mu(site.cultivated_m2),
        site.unit,
        row.state,
        row.case.found_on,
        problem.next_step,
        row.due_on,
        problem.days_overdue or None,
        "；".join(problem.alerts),
        "、".join(dict.fromkeys(row.flags)),
    ]


def write_problems(
    path: str | Path,
    items: Sequence[Problem],
    *,
    config: CampaignConfig,
    stamp: Stamp,
    by: str = "township",
) -> int:
    """Open items grouped by township (or responsible unit) in official order, each group
    under a band row with its count; returns the number of items."""
    order = config.units if by == "unit" else config.townships
    groups: dict[str, list[Problem]] = {name: [] for name in order}
    for item in items:
        site = item.row.case.site
        groups.setdefault(site.unit if by == "unit" else site.township, []).append(item)
    title = f"{config.district}违法用地问题清单"
    last = len(PROBLEM_COLUMNS) - 1
    with xlsx.Workbook(path, title=title, properties=stamp.properties()) as book:
        sheet = book.sheet(
            "问题清单",
            widths=[w for _, w, _ in PROBLEM_COLUMNS],
            freeze=(3, 2),
            print_title_rows=(3, 3),
            margins=MARGINS,
            header_footer=("", stamp.footer()),
        )
        sheet.row([title], xlsx.TITLE, height=28)
        sheet.merge(1, 0, 1, last)
        overdue = sum(1 for i in items if i.days_overdue)
        alerted = sum(1 for i in items if i.alerts)
        line = f"未销号问题 {len(items)} 个，其中整改逾期 {overdue} 个、有预警 {alerted} 个；"
        line += stamp.line()
        sheet.row([line], xlsx.NOTE, height=_across(line, PROBLEM_COLUMNS))
        sheet.merge(2, 0, 2, last)
        headers = [xlsx.fit_header(h, w) for h, w, _ in PROBLEM_COLUMNS]
        sheet.row(headers, xlsx.HEADER, height=2 * xlsx.LINE + 4)
        styles = [s for _, _, s in PROBLEM_COLUMNS]
        number = 0
        for name, members in groups.items():
            if not members:
                continue
            late = sum(1 for m in members if m.days_overdue)
            band = f"{name}：{len(members)} 个" + (f"（逾期 {late} 个）" if late else "")
            n = sheet.row([band] + [""] * last, xlsx.TOTAL_TEXT)
            sheet.merge(n, 0, n, last)
            for item in members:
                number += 1
                cells = problem_cells(number, item)
                sheet.row(cells, styles, height=_height(cells))
        if not items:
            n = sheet.row(["截至日期无未销号问题"] + [""] * last, xlsx.TEXT)
            sheet.merge(n, 0, n, last)
    return len(items)


CONTACT_COLUMNS: tuple[tuple[str, float, int], ...] = (
    ("序号", 6, xlsx.INT),
    ("单位", 20, xlsx.TEXT),
    ("姓名", 10, xlsx.CENTER),
    ("职务", 16, xlsx.TEXT),
    ("办公电话", 15, xlsx.CENTER),
    ("手机", 15, xlsx.CENTER),
    ("设置日期", 11, xlsx.DATE),
    ("备注", 12, xlsx.TEXT),
)


def write_contacts(
    path: str | Path,
    contacts: dict[str, ContactSet],
    *,
    config: CampaignConfig,
    stamp: Stamp,
    unmasked: bool = False,
) -> int:
    """附件1: one row per unit in official order; a unit without a contact says 未报送."""
    title = f"{config.name}联络人名单"
    last = len(CONTACT_COLUMNS) - 1
    with xlsx.Workbook(path, title=title, properties=stamp.properties()) as book:
        sheet = book.sheet(
            "附件1",
            widths=[w for _, w, _ in CONTACT_COLUMNS],
            freeze=(4, 0),
            print_title_rows=(4, 4),
            landscape=False,
            header_footer=("", stamp.footer()),
        )
        sheet.row(["附件1"], xlsx.NOTE_BOLD)
        sheet.row([title], xlsx.TITLE, height=46)
        sheet.merge(2, 0, 2, last)
        line = f"填报单位（盖章）：{config.bureau}　　{stamp.line()}"
        sheet.row([line], xlsx.NOTE, height=_across(line, CONTACT_COLUMNS))
        sheet.merge(3, 0, 3, last)
        sheet.row([h for h, _, _ in CONTACT_COLUMNS], xlsx.HEADER, height=24)
        styles = [s for _, _, s in CONTACT_COLUMNS]
        units = list(config.units) + [u for u in contacts if u not in config.units]
        reported = 0
        for number, unit in enumerate(units, start=1):
            found = contacts.get(unit)
            if found is None:
                sheet.row([number, unit, "", "", "", "", None, "未报送"], styles, height=20)
                continue
            reported += 1
            mobile = found.mobile if unmasked else masked("mobile", found.mobile)
            sheet.row(
                [
                    number,
                    unit,
                    found.name,
                    found.position,
                    found.office_phone,
                    mobile,
                    found.on,
                    "",
                ],
                styles,
                height=20,
            )
    return reported
