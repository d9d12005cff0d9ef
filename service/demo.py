"""A realistic, seeded demo campaign, recorded through the same commands staff use.

`demo_commands` is also the generator behind bench/ (at district, city and province scale).
"""

import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from domain.events import CampaignConfig

START = date(2022, 1, 10)
VILLAGES = ("东村", "西村", "南庄", "北庄", "河头", "沟口", "岭上", "新庄", "后沟", "前街")
PROJECTS = ("厂房", "仓库", "养殖场", "农家乐", "加油站", "砂石料场", "住宅", "停车场", "搅拌站")
SURNAMES = "王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗"


def demo_commands(config: CampaignConfig, cases: int, seed: int = 2022) -> list[dict[str, Any]]:
    """Commands for `cases` sites with varied paths, in business-date order (as staff record)."""
    rng = random.Random(seed)
    dated: list[tuple[date, int, dict[str, Any]]] = []
    width = max(4, len(str(cases)))
    for number in range(1, cases + 1):
        ref = f"{config.ref_prefix}{number:0{width}d}"
        for on, command in _case_story(rng, config, ref):
            dated.append((on, len(dated), {**command, "ref": ref, "on": on.isoformat()}))
    dated.sort(key=lambda item: (item[0], item[1]))
    return [command for _, _, command in dated]


def _case_story(
    rng: random.Random, config: CampaignConfig, ref: str
) -> list[tuple[date, dict[str, Any]]]:
    index = rng.randrange(len(config.townships))
    township = config.townships[index]
    unit = (
        config.units[index] if rng.random() < 0.9 else rng.choice(config.units[10:] or config.units)
    )
    on = START + timedelta(days=rng.randrange(75))
    area = Decimal(rng.randrange(200, 20000))
    cultivated = Decimal(0)
    basic = Decimal(0)
    types = [rng.choice(["无规划许可", "未按许可建设"])]
    if rng.random() < 0.45:
        cultivated = (area * Decimal(rng.randrange(20, 100)) / 100).quantize(Decimal("0.01"))
        types.append("占用耕地")
        if rng.random() < 0.3:
            basic = (cultivated * Decimal(rng.randrange(10, 100)) / 100).quantize(Decimal("0.01"))
            types.append("占用永久基本农田")
    if rng.random() < 0.03:  # a few clearly over the crime threshold
        area, cultivated, basic = Decimal(9000), Decimal(8000), Decimal("3333.33")
        types = ["占用耕地", "占用永久基本农田"]
    eco = Decimal(0)
    if rng.random() < 0.04:
        eco = (area * Decimal("0.3")).quantize(Decimal("0.01"))
        types.append("侵占生态保护红线")
    hazard = rng.random() < 0.1
    person = rng.random() < 0.6
    party = (
        rng.choice(SURNAMES) + rng.choice("建国志强秀英海军丽华")
        if person
        else f"{township[:2]}某建材有限公司"
    )
    found = {
        "cmd": "find_site",
        "source": rng.choices(
            ["巡查", "卫片", "举报", "上级交办", "自查", "其他"], [40, 30, 15, 8, 5, 2]
        )[0],
        "township": township,
        "village": rng.choice(VILLAGES),
        "location": f"{rng.choice(VILLAGES)}村{rng.choice('东西南北')}{rng.randrange(50, 900)}米",
        "project_name": f"{township[:2]}{rng.choice(PROJECTS)}项目",
        "party_name": party,
        "party_kind": "个人" if person else "单位",
        "party_id_no": f"1404{rng.randrange(10**13, 10**14)}" if person else "",
        "party_phone": f"13{rng.randrange(10**8, 10**9)}",
        "violation_types": types,
        "land_use": rng.choice(["工业", "仓储", "商业", "住宅", "养殖"]),
        "area_m2": str(area),
        "cultivated_m2": str(cultivated),
        "basic_farmland_m2": str(basic),
        "eco_redline_m2": str(eco),
        "building_area_m2": str((area * Decimal("0.6")).quantize(Decimal("0.01"))),
        "major_hazard": hazard,
        "hazard_note": "临边深基坑未防护" if hazard else "",
        "unit": unit,
    }
    story: list[tuple[date, dict[str, Any]]] = [(on, found)]

    def later(days_max: int) -> date:
        nonlocal on
        on = on + timedelta(days=rng.randrange(1, days_max))
        return on

    if rng.random() < 0.08:
        story.append(
            (later(10), {"cmd": "dismiss", "reason": rng.choice(["非违法", "重复", "不属实"])})
        )
        if rng.random() < 0.1:
            story.append((later(20), {"cmd": "reopen", "reason": "复核发现确属违法"}))
        else:
            return story
    if rng.random() < 0.05:
        story.append(
            (
                later(5),
                {"cmd": "correct_site", "area_m2": str(area + 100), "reason": "实测面积更正"},
            )
        )
    if rng.random() < 0.6:
        story.append(
            (
                later(5),
                {
                    "cmd": "stop",
                    "order_no": f"停字〔2022〕{rng.randrange(1, 999)}号",
                    "outcome": "停工",
                },
            )
        )
    filed = rng.random() < 0.5
    if filed:
        story.append(
            (
                later(10),
                {
                    "cmd": "file_case",
                    "case_no": f"上自然资立〔2022〕{ref[-4:]}号",
                    "handlers": ["李明", "王强"],
                },
            )
        )
        if rng.random() < 0.85:
            fine = (area * Decimal(rng.choice([10, 15, 20]))).quantize(Decimal("1"))
            story.append(
                (
                    later(20),
                    {
                        "cmd": "decide_penalty",
                        "decision_no": f"上自然资罚〔2022〕{ref[-4:]}号",
                        "fine_yuan": str(fine),
                        "demolish_m2": str(area // 2),
                    },
                )
            )
        else:
            filed = False
    if basic >= Decimal("3333.33") or (cultivated - basic) >= Decimal("6666.67"):
        if rng.random() < 0.7:
            story.append(
                (
                    later(10),
                    {
                        "cmd": "refer",
                        "agency": "公安",
                        "doc_no": f"移字{ref[-4:]}",
                        "persons": rng.randrange(1, 4),
                        "reason": "涉嫌非法占用农用地罪",
                    },
                )
            )
    elif rng.random() < 0.04:
        story.append(
            (
                later(10),
                {
                    "cmd": "refer",
                    "agency": rng.choice(["纪检监察", "住建", "乡镇政府"]),
                    "persons": rng.randrange(0, 3),
                },
            )
        )
    if rng.random() < 0.05:
        story.append(
            (
                later(5),
                {
                    "cmd": "flag",
                    "kind": rng.choice(["典型案件", "挂牌督办", "顶风作案", "屡禁不止"]),
                },
            )
        )
    if rng.random() < 0.75:
        measures = ["拆除复耕"] if cultivated else ["拆除复耕", "罚款"]
        story.append(
            (
                later(5),
                {
                    "cmd": "order_rectification",
                    "measures": measures,
                    "due_on": (on + timedelta(days=rng.randrange(10, 60))).isoformat(),
                },
            )
        )
        if rng.random() < 0.7:
            record = {
                "cmd": "record_rectification",
                "demolished_m2": str(area // 2),
                "restored_m2": str(cultivated),
            }
            if filed:
                record["fine_paid_yuan"] = str(area * 5)
            story.append((later(15), record))
            if rng.random() < 0.75:
                story.append(
                    (later(10), {"cmd": "complete_rectification", "verified_by": "执法监察大队"})
                )
                if rng.random() < 0.8:
                    story.append((later(10), {"cmd": "close_out", "basis": "整改到位，对账销号"}))
    return story
