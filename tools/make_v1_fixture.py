"""Make tests/fixtures/v1-every-event.db once: a SQLite store holding every event class of
version 1 of LandLedger's schema, as that version wrote it. It is committed and never made
again: tests/test_schema_evolution.py loads and folds it forever after, so a change to an event
that would strand stored events fails there. (Run again, it would write today's shapes.)

    PYTHONPATH=. python tools/make_v1_fixture.py

CampaignDefined is written as its version 1 (phases without `checks`, no `class_version`), the
shape stores made before version 2 hold, so the test exercises its upcaster.
"""

import dataclasses
import sqlite3
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domain.commands import parse_command
from domain.values import china_today
from service.ledger import LandLedger

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "v1-every-event.db"
ACTOR = "admin-01"
REF = "V1-0001"

COMMANDS: list[dict[str, Any]] = [
    {
        "cmd": "register_staff",
        "on": "2022-01-20",
        "staff_id": ACTOR,
        "name": "李管理",
        "unit": "执法监察大队",
        "role": "管理员",
    },
    {
        "cmd": "set_contact",
        "on": "2022-01-21",
        "unit": "苏店自然资源所",
        "name": "王明",
        "position": "所长",
        "mobile": "13800001234",
    },
    {"cmd": "set_deadline", "on": "2022-01-22", "phase": "rectify", "due_on": "2022-04-15"},
    {
        "cmd": "find_site",
        "ref": REF,
        "on": "2022-02-10",
        "source": "巡查",
        "township": "苏店镇",
        "village": "东村",
        "project_name": "东村仓储项目",
        "party_name": "张三",
        "party_kind": "个人",
        "party_id_no": "110101199001011234",
        "party_phone": "13912345678",
        "violation_types": ["占用耕地", "无规划许可"],
        "area_m2": "2000.00",
        "cultivated_m2": "1500.00",
        "unit": "苏店自然资源所",
        "note": "巡查发现",
    },
    {"cmd": "correct_site", "ref": REF, "on": "2022-02-12", "area_m2": "2400", "reason": "复测"},
    {
        "cmd": "stop",
        "ref": REF,
        "on": "2022-02-11",
        "order_no": "停字〔2022〕1号",
        "outcome": "停工",
    },
    {"cmd": "file_case", "ref": REF, "on": "2022-02-15", "case_no": "上自然资立〔2022〕1号"},
    {
        "cmd": "decide_penalty",
        "ref": REF,
        "on": "2022-02-20",
        "decision_no": "上自然资罚〔2022〕1号",
        "fine_yuan": "48000.00",
        "demolish_m2": "2400",
    },
    {
        "cmd": "refer",
        "ref": REF,
        "on": "2022-02-22",
        "agency": "公安",
        "persons": 2,
        "doc_no": "移字〔2022〕1号",
        "reason": "涉嫌非法占用农用地罪",
    },
    {
        "cmd": "order_rectification",
        "ref": REF,
        "on": "2022-02-23",
        "measures": ["拆除复耕", "罚款"],
        "due_on": "2022-03-20",
    },
    {
        "cmd": "record_rectification",
        "ref": REF,
        "on": "2022-03-05",
        "demolished_m2": "2400",
        "restored_m2": "1500",
        "fine_paid_yuan": "48000",
        "note": "已拆除复耕",
    },
    {
        "cmd": "complete_rectification",
        "ref": REF,
        "on": "2022-03-10",
        "verified_by": "执法监察大队",
    },
    {"cmd": "close_out", "ref": REF, "on": "2022-03-12", "basis": "整改到位"},
    {"cmd": "reopen", "ref": REF, "on": "2022-03-15", "reason": "复查发现复建"},
    {"cmd": "flag", "ref": REF, "on": "2022-03-16", "kind": "挂牌督办", "note": "市局督办"},
    {
        "cmd": "find_site",
        "ref": "V1-0002",
        "on": "2022-02-14",
        "source": "举报",
        "township": "荫城镇",
        "violation_types": ["其他"],
        "area_m2": "300",
        "unit": "荫城自然资源所",
    },
    {"cmd": "dismiss", "ref": "V1-0002", "on": "2022-02-16", "reason": "不属实"},
]


def campaign_v1(app: LandLedger) -> None:
    """Store the campaign as version 1 wrote it: its phases had no `checks`."""
    definition = app.definition()
    state = definition.model_dump(
        mode="json", exclude={"originator_id", "originator_version"}, exclude_none=True
    )
    state["on"] = "2022-01-18"
    for phase in state["config"]["phases"]:
        del phase["checks"]
    stored = app.mapper.to_stored_event(definition)
    app.append([dataclasses.replace(stored, state=orjson.dumps(state))], [])


def main() -> None:
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    for leftover in FIXTURE.parent.glob(FIXTURE.name + "*"):
        leftover.unlink()
    app = LandLedger(str(FIXTURE))
    try:
        campaign_v1(app)
        # One command a batch, as staff record them: each batch is its own recorded time.
        for command in COMMANDS:
            app.record([parse_command(command)], ACTOR)
    finally:
        app.close()
    with closing(sqlite3.connect(FIXTURE)) as conn:  # the log alone, in one small file
        for (table,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'rm\\_%' ESCAPE '\\'"
        ).fetchall():
            conn.execute(f"DROP TABLE {table}")
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("VACUUM")
    print(f"{FIXTURE}: {len(COMMANDS)} commands, made {china_today()}")


if __name__ == "__main__":
    main()
