"""问题清单 (open problems by jurisdiction) and 附件1 专项行动联络人."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from domain.events import CampaignConfig, ContactSet
from domain.values import m2_to_mu, masked
from exports import xlsx
from exports.stamp import Stamp
from projections.problems import Problem

PROBLEM_COLUMNS: tuple[tuple[str, float, int], ...] = (
    ("序号", 5, xlsx.INT),
    ("编号", 13, xlsx.TEXT),
    ("乡镇（街道）", 10, xlsx.TEXT),
    ("村", 8, xlsx.TEXT),
    ("项目名称", 18, xlsx.TEXT),
    ("违法类型", 24, xlsx.TEXT),
    ("占地（亩）", 10, xlsx.DEC2),
    ("耕地（亩）", 10, xlsx.DEC2),
    ("责任单位", 14, xlsx.TEXT),
    ("状态", 7, xlsx.CENTER),
    ("发现日期", 10.5, xlsx.DATE),
    ("下一步", 30, xlsx.TEXT),
    ("整改期限", 10.5, xlsx.DATE),
    ("逾期天数", 8, xlsx.INT),
    ("预警", 44, xlsx.TEXT),
    ("标记", 12, xlsx.TEXT),
)


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
            header_footer=("", stamp.footer()),
        )
        sheet.row([title], xlsx.TITLE, height=28)
        sheet.merge(1, 0, 1, last)
        overdue = sum(1 for i in items if i.days_overdue)
        alerted = sum(1 for i in items if i.alerts)
        sheet.row(
            [
                f"未销号问题 {len(items)} 个，其中整改逾期 {overdue} 个、有预警 {alerted} 个；"
                + stamp.line()
            ],
            xlsx.SUBTITLE,
        )
        sheet.merge(2, 0, 2, last)
        sheet.row([h for h, _, _ in PROBLEM_COLUMNS], xlsx.HEADER, height=30)
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
                sheet.row(problem_cells(number, item), styles)
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
        sheet.row([f"填报单位（盖章）：{config.bureau}　　{stamp.line()}"], xlsx.NOTE, height=30)
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
