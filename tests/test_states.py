"""Every event and every derived state (DESIGN "States"): states on SQLite alone (a fold of
events), the stored events and the generated refs on SQLite and on PostgreSQL."""

from datetime import date
from decimal import Decimal

import pytest
from helpers import cmd, find, record, rejected

from domain import events as e
from service.ledger import LandLedger

pytestmark = pytest.mark.backends("sqlite")  # see the module's docstring


def state(app: LandLedger, ref: str) -> str:
    return app.case(ref).state


def test_the_usual_path_walks_every_state(app: LandLedger) -> None:
    steps = [
        (find("P-1"), "已发现"),
        (cmd("stop", "P-1", "2022-02-11", order_no="责停〔2022〕1号", outcome="停工"), "已制止"),
        (
            cmd("file_case", "P-1", "2022-02-12", case_no="立〔2022〕1号", handlers=["张三"]),
            "已立案",
        ),
        (cmd("decide_penalty", "P-1", "2022-02-20", decision_no="罚1", fine_yuan="5000"), "已处罚"),
        (
            cmd(
                "order_rectification",
                "P-1",
                "2022-02-21",
                measures=["拆除复耕"],
                due_on="2022-03-31",
            ),
            "整改中",
        ),
        (cmd("record_rectification", "P-1", "2022-03-01", demolished_m2="100"), "整改中"),
        (cmd("complete_rectification", "P-1", "2022-03-10", verified_by="李四"), "已整改"),
        (cmd("close_out", "P-1", "2022-03-11", basis="验收合格"), "已销号"),
        (cmd("reopen", "P-1", "2022-03-20", reason="复查发现复建"), "整改中"),
        (cmd("complete_rectification", "P-1", "2022-03-25"), "已整改"),
        (cmd("close_out", "P-1", "2022-03-26"), "已销号"),
    ]
    for command, expected in steps:
        record(app, command)
        assert state(app, "P-1") == expected, command


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ([], "已发现"),
        ([cmd("stop", "S", "2022-02-11")], "已制止"),
        ([cmd("file_case", "S", "2022-02-11", case_no="L")], "已立案"),
        # Precedence, not sequence: a filed case that is also stopped shows 已立案.
        (
            [cmd("file_case", "S", "2022-02-12", case_no="L"), cmd("stop", "S", "2022-02-11")],
            "已立案",
        ),
        (
            [
                cmd("file_case", "S", "2022-02-11", case_no="L"),
                cmd("decide_penalty", "S", "2022-02-12", decision_no="D", fine_yuan="0"),
            ],
            "已处罚",
        ),
        # Rectification without filing (非立案处理): ordered, recorded, completed, closed out.
        (
            [cmd("order_rectification", "S", "2022-02-11", measures=["其他"], due_on="2022-03-01")],
            "整改中",
        ),
        ([cmd("record_rectification", "S", "2022-02-11", restored_m2="10")], "整改中"),
        ([cmd("complete_rectification", "S", "2022-02-11")], "已整改"),
        (
            [cmd("complete_rectification", "S", "2022-02-11"), cmd("close_out", "S", "2022-02-12")],
            "已销号",
        ),
        ([cmd("dismiss", "S", "2022-02-11", reason="不属实")], "已排除"),
        # Dismissal outranks rectification; reopening clears both dismissal and completion.
        (
            [
                cmd("record_rectification", "S", "2022-02-11"),
                cmd("complete_rectification", "S", "2022-02-12"),
                cmd("dismiss", "S", "2022-02-13", reason="重复"),
            ],
            "已排除",
        ),
        (
            [
                cmd("record_rectification", "S", "2022-02-11"),
                cmd("complete_rectification", "S", "2022-02-12"),
                cmd("dismiss", "S", "2022-02-13", reason="重复"),
                cmd("reopen", "S", "2022-02-14", reason="并非重复"),
            ],
            "整改中",
        ),
        (
            [
                cmd("stop", "S", "2022-02-11"),
                cmd("dismiss", "S", "2022-02-12", reason="非违法"),
                cmd("reopen", "S", "2022-02-13", reason="排除有误"),
            ],
            "已制止",
        ),
        (
            [
                cmd("dismiss", "S", "2022-02-12", reason="其他"),
                cmd("reopen", "S", "2022-02-13", reason="排除有误"),
            ],
            "已发现",
        ),
        # Completed without an order or a record: reopening leaves nothing of the rectification.
        (
            [
                cmd("complete_rectification", "S", "2022-02-11"),
                cmd("close_out", "S", "2022-02-12"),
                cmd("reopen", "S", "2022-02-13", reason="反弹"),
            ],
            "已发现",
        ),
        (
            [
                cmd("file_case", "S", "2022-02-11", case_no="L"),
                cmd("complete_rectification", "S", "2022-02-12"),
                cmd("close_out", "S", "2022-02-13"),
                cmd("reopen", "S", "2022-02-14", reason="反弹"),
            ],
            "已立案",
        ),
        # Referrals, flags and corrections run beside the states.
        (
            [
                cmd("refer", "S", "2022-02-11", agency="公安", persons=2),
                cmd("flag", "S", "2022-02-11", kind="挂牌督办"),
                cmd("correct_site", "S", "2022-02-11", reason="复测", area_m2="1200"),
            ],
            "已发现",
        ),
        (
            [
                cmd("complete_rectification", "S", "2022-02-11"),
                cmd("close_out", "S", "2022-02-12"),
                cmd("flag", "S", "2022-02-13", kind="典型案件"),
                cmd("correct_site", "S", "2022-02-13", reason="复测", area_m2="1200"),
            ],
            "已销号",
        ),
    ],
)
def test_derived_state(app: LandLedger, path: list[dict[str, object]], expected: str) -> None:
    record(app, find("S"), *path)
    assert state(app, "S") == expected


def test_each_command_in_its_own_batch_gives_the_same_state(app: LandLedger) -> None:
    """One batch per command (as staff record them) and one batch for all agree."""
    path = [
        find("A"),
        cmd("stop", "A", "2022-02-11"),
        cmd("dismiss", "A", "2022-02-12", reason="不属实"),
        cmd("reopen", "A", "2022-02-13", reason="有误"),
        cmd("record_rectification", "A", "2022-02-14"),
        cmd("complete_rectification", "A", "2022-02-15"),
    ]
    for command in path:
        record(app, command)
    record(app, *[{**c, "ref": "B"} for c in path])
    assert state(app, "A") == state(app, "B") == "已整改"


def test_reopen_makes_the_case_open_work_again(app: LandLedger) -> None:
    record(
        app,
        find("R"),
        cmd("complete_rectification", "R", "2022-02-11"),
        cmd("close_out", "R", "2022-02-12"),
        cmd("reopen", "R", "2022-02-13", reason="复建"),
    )
    # Completion was cleared: no close-out until the rectification is complete again.
    assert "尚未整改到位" in rejected(app, cmd("close_out", "R", "2022-02-14"))
    # Open work again: commands a closed-out case refuses are accepted.
    record(app, cmd("stop", "R", "2022-02-14"), cmd("record_rectification", "R", "2022-02-15"))
    assert state(app, "R") == "整改中"
    record(
        app, cmd("complete_rectification", "R", "2022-02-16"), cmd("close_out", "R", "2022-02-17")
    )
    assert state(app, "R") == "已销号"


@pytest.mark.backends("sqlite", "postgres")  # every event's round trip
def test_every_event_is_stored_with_actor_dates_and_its_fields(app: LandLedger) -> None:
    record(
        app,
        find("E", party_name="王五", major_hazard=True, hazard_note="深基坑"),
        cmd("correct_site", "E", "2022-02-10", reason="复测", cultivated_m2="600"),
        cmd("stop", "E", "2022-02-11", order_no="停1", outcome="制止无效"),
        cmd("dismiss", "E", "2022-02-11", reason="其他"),
        cmd("reopen", "E", "2022-02-12", reason="排除有误"),
        cmd(
            "file_case",
            "E",
            "2022-02-12",
            case_no="立1",
            unit="执法监察大队",
            handlers=["甲", "乙"],
        ),
        cmd(
            "decide_penalty",
            "E",
            "2022-02-20",
            decision_no="罚1",
            fine_yuan="12000.50",
            confiscated_income_yuan="300",
            demolish_m2="80",
            confiscate_building_m2="20",
        ),
        cmd("refer", "E", "2022-02-21", agency="纪检监察", doc_no="移1", persons=1, reason="失职"),
        cmd(
            "order_rectification",
            "E",
            "2022-02-22",
            measures=["拆除复耕", "罚款"],
            due_on="2022-03-31",
        ),
        cmd(
            "record_rectification",
            "E",
            "2022-03-01",
            demolished_m2="80",
            restored_m2="600",
            fine_paid_yuan="12300.50",
            permit_doc_no="补1",
            permit_area_m2="50",
            note="已复耕",
        ),
        cmd("complete_rectification", "E", "2022-03-05", verified_by="验收组"),
        cmd("close_out", "E", "2022-03-06", basis="销号表"),
        cmd("reopen", "E", "2022-03-07", reason="复建"),
        cmd("flag", "E", "2022-03-08", kind="屡禁不止", note="二次违建"),
        actor="enforcer-9",
    )
    events = app.history("E")
    assert [type(ev).__name__ for ev in events] == [
        "SiteFound",
        "SiteCorrected",
        "Stopped",
        "Dismissed",
        "Reopened",
        "CaseFiled",
        "PenaltyDecided",
        "Referred",
        "RectificationOrdered",
        "RectificationRecorded",
        "RectificationCompleted",
        "ClosedOut",
        "Reopened",
        "Flagged",
    ]
    assert [ev.TITLE for ev in events] == [
        "发现",
        "更正",
        "制止",
        "排除",
        "重开",
        "立案",
        "处罚决定",
        "移送",
        "整改要求",
        "整改记录",
        "整改到位",
        "销号",
        "重开",
        "标记",
    ]
    assert [ev.originator_version for ev in events] == list(range(1, 15))
    assert {ev.actor for ev in events} == {"enforcer-9"}
    assert {ev.actor_unit for ev in events} == {""}  # no staff registered: no unit
    assert events[0].on == date(2022, 2, 10)
    assert events[-1].on == date(2022, 3, 8)
    decided, ordered, filed, referred = events[6], events[8], events[5], events[7]
    assert isinstance(decided, e.PenaltyDecided)
    assert decided.fine_yuan == Decimal("12000.50")
    assert decided.confiscated_income_yuan == Decimal("300")
    assert isinstance(ordered, e.RectificationOrdered)
    assert ordered.due_on == date(2022, 3, 31)
    assert ordered.measures == ("拆除复耕", "罚款")
    assert isinstance(filed, e.CaseFiled)
    assert filed.handlers == ("甲", "乙")
    assert filed.unit == "执法监察大队"
    assert isinstance(referred, e.Referred)
    assert referred.persons == 1
    case = app.case("E")
    assert case.site.cultivated_m2 == Decimal("600")
    assert case.site.major_hazard is True
    assert case.state == "整改中"


@pytest.mark.backends("sqlite", "postgres")  # the campaign's events stored and read back
def test_campaign_commands_are_events_too(app: LandLedger) -> None:
    record(
        app,
        {
            "cmd": "set_contact",
            "unit": "苏店自然资源所",
            "name": "赵六",
            "position": "所长",
            "office_phone": "0355-1234567",
            "mobile": "13900000000",
        },
        {"cmd": "set_deadline", "phase": "survey", "due_on": "2022-03-10", "on": "2022-02-20"},
        {
            "cmd": "register_staff",
            "staff_id": "admin",
            "name": "管理员",
            "unit": "执法监察大队",
            "role": "管理员",
        },
    )
    campaign = app.campaign()
    assert campaign.contacts["苏店自然资源所"].name == "赵六"
    assert campaign.deadlines["survey"] == date(2022, 3, 10)
    assert campaign.staff["admin"].role == "管理员"
    message = rejected(
        app, {"cmd": "set_deadline", "phase": "摸排", "due_on": "2022-03-10"}, actor="admin"
    )
    assert "阶段" in message and "survey" in message and "rectify" in message


@pytest.mark.backends("sqlite", "postgres")  # the next free ref is a query
def test_generated_refs_follow_the_campaign_prefix(app: LandLedger) -> None:
    first = {k: v for k, v in find("x").items() if k != "ref"}
    result = record(app, first, first)
    assert result.generated_refs == ["SD-2022-0001", "SD-2022-0002"]
    result = record(app, first)
    assert result.generated_refs == ["SD-2022-0003"]
    assert state(app, "SD-2022-0003") == "已发现"
