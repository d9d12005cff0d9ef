"""DESIGN's "Rules the domain enforces": each rejected with a Chinese message naming the field,
nothing appended; and what DESIGN says is NOT rejected is accepted. Rules never depend on
storage: SQLite alone, but for the two that rest on the store (the ref index, the transaction)."""

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from helpers import TOWNSHIPS, UNITS, cmd, find, record, rejected

from domain import events as e
from service.ledger import LandLedger

pytestmark = pytest.mark.backends("sqlite")  # see the module's docstring

CHINA = timezone(timedelta(hours=8))


def days_from_today(days: int) -> str:
    return (datetime.now(CHINA).date() + timedelta(days=days)).isoformat()


def filed(app: LandLedger, ref: str = "C") -> None:
    record(app, find(ref), cmd("file_case", ref, "2022-02-11", case_no="立1"))


# Dates ------------------------------------------------------------------------------------


EVERY_LATER_COMMAND: list[dict[str, Any]] = [
    cmd("correct_site", "C", "2022-02-09", reason="复测", area_m2="900"),
    cmd("stop", "C", "2022-02-09"),
    cmd("dismiss", "C", "2022-02-09", reason="重复"),
    cmd("file_case", "C", "2022-02-09", case_no="立1"),
    cmd("decide_penalty", "C", "2022-02-09", decision_no="罚1", fine_yuan="1"),
    cmd("refer", "C", "2022-02-09", agency="公安"),
    cmd("order_rectification", "C", "2022-02-09", measures=["罚款"], due_on="2022-03-01"),
    cmd("record_rectification", "C", "2022-02-09"),
    cmd("complete_rectification", "C", "2022-02-09"),
    cmd("close_out", "C", "2022-02-09"),
    cmd("flag", "C", "2022-02-09", kind="典型案件"),
]


@pytest.mark.parametrize("command", EVERY_LATER_COMMAND, ids=lambda c: c["cmd"])
def test_a_date_before_the_find_is_rejected(app: LandLedger, command: dict[str, Any]) -> None:
    record(app, find("C", on="2022-02-10"))
    message = rejected(app, command)
    assert message == "日期 2022-02-09 早于发现日期 2022-02-10"


def test_reopen_dated_before_the_find_is_rejected(app: LandLedger) -> None:
    record(app, find("C", on="2022-02-10"), cmd("dismiss", "C", "2022-02-10", reason="重复"))
    assert "早于发现日期" in rejected(app, cmd("reopen", "C", "2022-02-09", reason="有误"))


@pytest.mark.parametrize("command", EVERY_LATER_COMMAND, ids=lambda c: c["cmd"])
def test_a_future_date_is_rejected(app: LandLedger, command: dict[str, Any]) -> None:
    record(app, find("C", on="2022-02-10"))
    future = days_from_today(2)
    message = rejected(app, {**command, "on": future})
    assert message.startswith(f"日期 {future} 晚于今天")


def test_a_future_find_and_a_future_campaign_change_are_rejected(app: LandLedger) -> None:
    future = days_from_today(2)
    assert "晚于今天" in rejected(app, find("F", on=future))
    contact = {"cmd": "set_contact", "unit": "苏店自然资源所", "name": "赵六", "on": future}
    assert "晚于今天" in rejected(app, contact)


def test_today_and_the_find_date_itself_are_accepted(app: LandLedger) -> None:
    today = days_from_today(0)  # the domain reads its clock later: never an earlier day
    record(app, find("T", on=today), cmd("stop", "T", today))
    record(app, find("U", on="2022-02-10"), cmd("stop", "U", "2022-02-10"))
    assert app.case("T").state == app.case("U").state == "已制止"


# Areas and amounts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"area_m2": "100", "cultivated_m2": "200"}, "耕地面积 200.00㎡ 大于占地面积 100.00㎡"),
        (
            {"area_m2": "300", "cultivated_m2": "100", "basic_farmland_m2": "150"},
            "永久基本农田面积 150.00㎡ 大于耕地面积 100.00㎡",
        ),
        (
            {"area_m2": "100", "eco_redline_m2": "100.01"},
            "生态保护红线面积 100.01㎡ 大于占地面积 100.00㎡",
        ),
        # Given in 亩: 1 亩 is 666.67㎡, more than 600㎡.
        ({"area_m2": "600", "cultivated_mu": "1"}, "耕地面积 666.67㎡ 大于占地面积 600.00㎡"),
    ],
)
def test_parts_larger_than_the_whole_are_rejected(
    app: LandLedger, fields: dict[str, str], message: str
) -> None:
    assert rejected(app, find("A", **fields)) == message


def test_parts_equal_to_the_whole_are_accepted(app: LandLedger) -> None:
    record(
        app,
        find(
            "A", area_m2="100", cultivated_m2="100", basic_farmland_m2="100", eco_redline_m2="100"
        ),
    )
    assert app.case("A").site.basic_farmland_m2 == 100


def test_a_correction_must_leave_the_site_consistent(app: LandLedger) -> None:
    record(app, find("A", area_m2="1000", cultivated_m2="500", basic_farmland_m2="200"))
    assert (
        rejected(app, cmd("correct_site", "A", "2022-03-01", reason="复测", area_m2="400"))
        == "耕地面积 500.00㎡ 大于占地面积 400.00㎡"
    )
    assert (
        rejected(
            app, cmd("correct_site", "A", "2022-03-01", reason="复测", basic_farmland_m2="501")
        )
        == "永久基本农田面积 501.00㎡ 大于耕地面积 500.00㎡"
    )
    # Several fields at once are checked together: shrinking both is fine.
    record(
        app,
        cmd("correct_site", "A", "2022-03-01", reason="复测", area_m2="400", cultivated_m2="300"),
    )
    assert app.case("A").site.cultivated_m2 == 300


@pytest.mark.parametrize(
    ("command", "field", "label"),
    [
        (find("N"), "area_m2", "占地面积"),
        (find("N"), "cultivated_m2", "耕地面积"),
        (find("N"), "basic_farmland_m2", "永久基本农田面积"),
        (find("N"), "eco_redline_m2", "生态保护红线面积"),
        (find("N"), "building_area_m2", "建筑面积"),
        (cmd("correct_site", "C", "2022-02-11", reason="复测"), "area_m2", "占地面积"),
        (
            cmd("decide_penalty", "C", "2022-02-12", decision_no="罚1", fine_yuan="1"),
            "fine_yuan",
            "罚款",
        ),
        (
            cmd("decide_penalty", "C", "2022-02-12", decision_no="罚1", fine_yuan="1"),
            "confiscated_income_yuan",
            "没收违法所得",
        ),
        (
            cmd("decide_penalty", "C", "2022-02-12", decision_no="罚1", fine_yuan="1"),
            "demolish_m2",
            "限期拆除面积",
        ),
        (
            cmd("decide_penalty", "C", "2022-02-12", decision_no="罚1", fine_yuan="1"),
            "confiscate_building_m2",
            "没收建筑面积",
        ),
        (cmd("record_rectification", "C", "2022-02-12"), "demolished_m2", "拆除面积"),
        (cmd("record_rectification", "C", "2022-02-12"), "restored_m2", "复耕面积"),
        (cmd("record_rectification", "C", "2022-02-12"), "fine_paid_yuan", "已缴罚没款"),
        (cmd("record_rectification", "C", "2022-02-12"), "permit_area_m2", "补办面积"),
        (cmd("refer", "C", "2022-02-12", agency="公安"), "persons", "移送人数"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_negative_amounts_are_rejected(
    app: LandLedger, command: dict[str, Any], field: str, label: str
) -> None:
    filed(app)
    value: Any = -1 if field == "persons" else "-0.01"
    message = rejected(app, {**command, field: value})
    assert message.startswith(f"{label}：")
    assert "不能小于 0" in message


@pytest.mark.parametrize("value", ["abc", "NaN", "Infinity", ""])
def test_an_amount_that_is_not_a_number_is_rejected(app: LandLedger, value: str) -> None:
    message = rejected(app, find("N", area_m2=value))
    assert message.startswith("占地面积：") and "不是数字" in message


# Identity and transitions -----------------------------------------------------------------


@pytest.mark.backends("sqlite", "postgres")  # the ref index
def test_a_ref_is_unique_even_for_an_identical_find(app: LandLedger) -> None:
    record(app, find("DUP"))
    assert rejected(app, find("DUP")) == "编号 “DUP” 已存在，不能重复发现"
    assert rejected(app, find("NEW"), find("NEW")) == "编号 “NEW” 已存在，不能重复发现"
    assert rejected(app, find("DUP", township="荫城镇", unit="荫城自然资源所")).startswith(
        "编号 “DUP” 已存在"
    )


def test_an_unknown_ref_is_rejected(app: LandLedger) -> None:
    assert rejected(app, cmd("stop", "NOPE", "2022-02-10")) == "编号 “NOPE” 不存在"


def test_a_case_is_filed_once_even_after_reopening(app: LandLedger) -> None:
    filed(app)
    again = cmd("file_case", "C", "2022-02-12", case_no="立2")
    assert rejected(app, again) == "案件 C 已立案，一个案件只能立案一次"
    record(
        app,
        cmd("complete_rectification", "C", "2022-02-12"),
        cmd("close_out", "C", "2022-02-13"),
        cmd("reopen", "C", "2022-02-14", reason="复建"),
    )
    assert rejected(app, {**again, "on": "2022-02-15"}) == "案件 C 已立案，一个案件只能立案一次"


def test_a_penalty_needs_a_filed_case_and_is_decided_once(app: LandLedger) -> None:
    record(app, find("C"))
    decide = cmd("decide_penalty", "C", "2022-02-12", decision_no="罚1", fine_yuan="100")
    assert rejected(app, decide) == "案件 C 尚未立案，不能作出处罚决定"
    record(app, cmd("file_case", "C", "2022-02-11", case_no="立1"), decide)
    assert rejected(app, {**decide, "decision_no": "罚2"}) == (
        "案件 C 已有处罚决定，一个案件只能有一个处罚决定"
    )
    # Filing and deciding in the same batch is fine.
    record(
        app,
        find("D"),
        cmd("file_case", "D", "2022-02-11", case_no="立2"),
        {**decide, "ref": "D"},
    )
    assert app.case("D").state == "已处罚"


def test_close_out_only_after_rectification_is_complete(app: LandLedger) -> None:
    record(
        app,
        find("C"),
        cmd("order_rectification", "C", "2022-02-11", measures=["其他"], due_on="2022-03-01"),
    )
    assert rejected(app, cmd("close_out", "C", "2022-02-12")) == (
        "案件 C 尚未整改到位（整改中），不能销号"
    )
    record(
        app, cmd("complete_rectification", "C", "2022-02-12"), cmd("close_out", "C", "2022-02-12")
    )
    assert app.case("C").state == "已销号"


def test_a_permit_only_after_a_penalty_decision(app: LandLedger) -> None:
    filed(app)
    permit = cmd(
        "record_rectification", "C", "2022-02-13", permit_doc_no="补1", permit_area_m2="50"
    )
    message = rejected(app, permit)
    assert message == "补办手续文号：案件 C 尚未作出处罚决定，先处罚后补办手续"
    # Without a permit_doc_no the same record is fine.
    record(app, {**permit, "permit_doc_no": ""})
    record(app, cmd("decide_penalty", "C", "2022-02-12", decision_no="罚1", fine_yuan="0"), permit)
    assert [type(ev).__name__ for ev in app.history("C")][-1] == "RectificationRecorded"


REFUSED_WHEN_CLOSED: list[dict[str, Any]] = [
    cmd("stop", "C", "2022-03-01"),
    cmd("dismiss", "C", "2022-03-01", reason="重复"),
    cmd("file_case", "C", "2022-03-01", case_no="立9"),
    cmd("decide_penalty", "C", "2022-03-01", decision_no="罚1", fine_yuan="1"),
    cmd("refer", "C", "2022-03-01", agency="公安"),
    cmd("order_rectification", "C", "2022-03-01", measures=["罚款"], due_on="2022-04-01"),
    cmd("record_rectification", "C", "2022-03-01"),
    cmd("complete_rectification", "C", "2022-03-01"),
    cmd("close_out", "C", "2022-03-01"),
]


@pytest.mark.parametrize("how", ["dismissed", "closed_out"])
@pytest.mark.parametrize("command", REFUSED_WHEN_CLOSED, ids=lambda c: c["cmd"])
def test_a_closed_or_dismissed_case_accepts_only_reopen_correct_and_flag(
    app: LandLedger, how: str, command: dict[str, Any]
) -> None:
    filed(app)
    if how == "dismissed":
        record(app, cmd("dismiss", "C", "2022-02-20", reason="不属实"))
        state = "已排除"
    else:
        record(
            app,
            cmd("complete_rectification", "C", "2022-02-20"),
            cmd("close_out", "C", "2022-02-21"),
        )
        state = "已销号"
    assert rejected(app, command) == (
        f"案件 C {state}，只能重开（reopen）、更正（correct_site）或标记（flag）"
    )


@pytest.mark.parametrize("how", ["dismissed", "closed_out"])
def test_a_closed_or_dismissed_case_takes_corrections_flags_and_reopening(
    app: LandLedger, how: str
) -> None:
    record(app, find("C"))
    if how == "dismissed":
        record(app, cmd("dismiss", "C", "2022-02-20", reason="不属实"))
    else:
        record(
            app,
            cmd("complete_rectification", "C", "2022-02-20"),
            cmd("close_out", "C", "2022-02-21"),
        )
    record(
        app,
        cmd("correct_site", "C", "2022-03-01", reason="复测", area_m2="2000"),
        cmd("flag", "C", "2022-03-01", kind="典型案件"),
        cmd("reopen", "C", "2022-03-02", reason="有误"),
    )
    assert app.case("C").site.area_m2 == 2000
    assert app.case("C").state == "已发现"


def test_reopen_only_a_closed_out_or_dismissed_case(app: LandLedger) -> None:
    record(app, find("C"), cmd("complete_rectification", "C", "2022-02-11"))
    assert rejected(app, cmd("reopen", "C", "2022-02-12", reason="x")) == (
        "案件 C 已整改，只有已销号或已排除的案件才能重开"
    )


# Names and enumerations -------------------------------------------------------------------


def test_an_unknown_township_lists_the_valid_ones(app: LandLedger) -> None:
    message = rejected(app, find("A", township="上党镇"))
    assert message == f"乡镇（街道）：“上党镇”不在本专项行动的名录中，可选：{'、'.join(TOWNSHIPS)}"
    record(app, find("B"))
    correction = cmd("correct_site", "B", "2022-02-11", reason="x", township="长治镇")
    assert "“长治镇”不在本专项行动的名录中" in rejected(app, correction)


@pytest.mark.parametrize(
    "command",
    [
        find("A", unit="上党自然资源所"),
        cmd("correct_site", "B", "2022-02-11", reason="x", unit="上党自然资源所"),
        cmd("file_case", "B", "2022-02-11", case_no="立1", unit="上党自然资源所"),
        {"cmd": "set_contact", "unit": "上党自然资源所", "name": "赵六"},
        {
            "cmd": "register_staff",
            "staff_id": "x",
            "name": "钱七",
            "unit": "上党自然资源所",
            "role": "所员",
        },
    ],
    ids=lambda c: c["cmd"],
)
def test_an_unknown_unit_lists_the_valid_ones(app: LandLedger, command: dict[str, Any]) -> None:
    record(app, find("B"))
    message = rejected(app, command)
    assert message == f"单位：“上党自然资源所”不在本专项行动的名录中，可选：{'、'.join(UNITS)}"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            find("A", source="路过"),
            "线索来源：“路过”不是有效值，可选：巡查、卫片、举报、上级交办、自查、其他",
        ),
        (
            find("A", party_kind="法人"),
            "当事人类型：“法人”不是有效值，可选：个人、单位、村集体、其他",
        ),
        (
            find("A", violation_types=["占用耕地", "乱建"]),
            "违法类型第2项：“乱建”不是有效值，可选：无规划许可、未按许可建设、占用耕地、"
            "占用永久基本农田、侵占生态保护红线、其他",
        ),
        (
            cmd("stop", "B", "2022-02-11", outcome="跑了"),
            "制止结果：“跑了”不是有效值，可选：停工、恢复原状、制止无效",
        ),
        (
            cmd("dismiss", "B", "2022-02-11", reason="不想查"),
            "原因：“不想查”不是有效值，可选：非违法、重复、不属实、其他",
        ),
        (
            cmd("refer", "B", "2022-02-11", agency="检察院"),
            "移送机关：“检察院”不是有效值，可选：公安、纪检监察、住建、法院、乡镇政府、其他",
        ),
        (
            cmd("order_rectification", "B", "2022-02-11", measures=["道歉"], due_on="2022-03-01"),
            "整改措施第1项：“道歉”不是有效值，可选：拆除复耕、补办手续、罚款、没收、其他",
        ),
        (
            cmd("flag", "B", "2022-02-11", kind="普通"),
            "标记类型：“普通”不是有效值，可选：典型案件、挂牌督办、顶风作案、屡禁不止、重大违法、严重违反产业政策",
        ),
        (
            {
                "cmd": "register_staff",
                "staff_id": "x",
                "name": "钱七",
                "unit": "执法监察大队",
                "role": "局长",
            },
            "角色：“局长”不是有效值，可选：所员、执法大队、审计、管理员",
        ),
    ],
    ids=lambda v: v["cmd"] if isinstance(v, dict) else "",
)
def test_an_unknown_enum_value_lists_the_valid_ones(
    app: LandLedger, command: dict[str, Any], expected: str
) -> None:
    record(app, find("B"))
    assert expected in rejected(app, command)


@pytest.mark.parametrize(
    ("command", "unknown"),
    [
        (find("A", areaa_m2="10"), "areaa_m2"),
        (find("A", fine_mu="1"), "fine_mu"),  # `_mu` stands only for an area the command has
        (cmd("stop", "B", "2022-02-11", order="停1"), "order"),
        (cmd("correct_site", "B", "2022-02-11", reason="x", townshp="苏店镇"), "townshp"),
        (cmd("correct_site", "B", "2022-02-11", reason="x", case_no="立1"), "case_no"),
        ({"cmd": "set_deadline", "phase": "survey", "due": "2022-03-01"}, "due"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_an_unknown_field_is_rejected_by_name(
    app: LandLedger, command: dict[str, Any], unknown: str
) -> None:
    record(app, find("B"))
    message = rejected(app, command)
    assert f"未知字段 “{unknown}”（{command['cmd']} 命令没有这个字段，请检查拼写）" in message


def test_an_unknown_command_lists_the_commands(app: LandLedger) -> None:
    message = rejected(app, {"cmd": "close", "ref": "B", "on": "2022-02-11"})
    assert message.startswith("未知命令 “close”，可用的命令：find_site、correct_site、stop")


@pytest.mark.parametrize(
    ("command", "missing", "label"),
    [
        (find("A"), "on", "日期"),
        (find("A"), "source", "线索来源"),
        (find("A"), "township", "乡镇（街道）"),
        (find("A"), "unit", "责任单位"),
        (find("A"), "violation_types", "违法类型"),
        (find("A"), "area_m2", "占地面积"),
        (cmd("stop", "B", "2022-02-11"), "ref", "编号"),
        (cmd("stop", "B", "2022-02-11"), "on", "日期"),
        (cmd("file_case", "B", "2022-02-11", case_no="立1"), "case_no", "立案编号"),
        (
            cmd("decide_penalty", "B", "2022-02-11", decision_no="罚", fine_yuan="1"),
            "decision_no",
            "处罚决定书编号",
        ),
        (
            cmd("decide_penalty", "B", "2022-02-11", decision_no="罚", fine_yuan="1"),
            "fine_yuan",
            "罚款",
        ),
        (cmd("refer", "B", "2022-02-11", agency="公安"), "agency", "移送机关"),
        (
            cmd("order_rectification", "B", "2022-02-11", measures=["罚款"], due_on="2022-03-01"),
            "measures",
            "整改措施",
        ),
        (
            cmd("order_rectification", "B", "2022-02-11", measures=["罚款"], due_on="2022-03-01"),
            "due_on",
            "整改期限",
        ),
        (cmd("correct_site", "B", "2022-02-11", reason="x"), "reason", "原因"),
        (cmd("dismiss", "B", "2022-02-11", reason="重复"), "reason", "原因"),
        (cmd("reopen", "B", "2022-02-11", reason="x"), "reason", "原因"),
        (cmd("flag", "B", "2022-02-11", kind="典型案件"), "kind", "标记类型"),
    ],
    ids=lambda v: v["cmd"] if isinstance(v, dict) else v,
)
def test_a_missing_required_field_is_named(
    app: LandLedger, command: dict[str, Any], missing: str, label: str
) -> None:
    record(app, find("B"))
    without = {k: v for k, v in command.items() if k != missing}
    assert f"{label}（{missing}）：必填，{command['cmd']} 命令缺少此字段" in rejected(app, without)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"on": "2022/02/10"}, "日期：“2022/02/10”不是有效日期，应为 YYYY-MM-DD"),
        ({"on": 20220210}, "日期：“20220210”不是有效日期"),
        ({"on": "2022-02-30"}, "日期：“2022-02-30”不是有效日期"),
        ({"violation_types": "占用耕地"}, "违法类型：“占用耕地”应为数组"),
        ({"violation_types": []}, "违法类型：不能为空"),
        ({"case_no": ""}, "立案编号：不能为空"),
    ],
)
def test_malformed_values_are_named(app: LandLedger, fields: dict[str, Any], expected: str) -> None:
    record(app, find("B"))
    base = cmd("file_case", "B", "2022-02-11", case_no="立1") if "case_no" in fields else find("A")
    assert expected in rejected(app, {**base, **fields})


def test_persons_must_be_an_integer(app: LandLedger) -> None:
    record(app, find("B"))
    for value in ("2", 1.5):
        message = rejected(app, cmd("refer", "B", "2022-02-11", agency="公安", persons=value))
        assert message == f"移送人数：“{value}”应为整数"


@pytest.mark.backends("sqlite", "postgres")  # one transaction
def test_a_rejected_batch_writes_nothing_of_its_valid_commands(app: LandLedger) -> None:
    record(app, find("B"))
    rejected(
        app,
        find("N1"),
        cmd("stop", "B", "2022-02-11"),
        cmd("file_case", "B", "2022-02-12", case_no="立1"),
        cmd("file_case", "B", "2022-02-13", case_no="立2"),  # filed twice
    )
    assert app.case("B").state == "已发现"
    assert "不存在" in rejected(app, cmd("stop", "N1", "2022-02-11"))


# What DESIGN says is not rejected ---------------------------------------------------------


def test_a_late_entry_may_be_dated_back(app: LandLedger) -> None:
    filed(app)
    record(
        app,
        cmd("decide_penalty", "C", "2022-02-20", decision_no="罚1", fine_yuan="1000"),
        cmd("complete_rectification", "C", "2022-02-25"),
    )
    # A stop and a referral entered afterwards but dated before the filing.
    record(
        app,
        cmd("stop", "C", "2022-02-10", order_no="停1"),
        cmd("refer", "C", "2022-02-10", agency="公安", persons=1),
    )
    record(app, cmd("close_out", "C", "2022-02-26"))
    # A flag dated back onto the closed-out case.
    record(app, cmd("flag", "C", "2022-02-10", kind="顶风作案"))
    assert [ev.on.isoformat() for ev in app.history("C")][-3:] == [
        "2022-02-10",
        "2022-02-26",
        "2022-02-10",
    ]
    assert app.case("C").state == "已销号"


def test_fines_in_instalments_and_restoration_beyond_the_cultivated_area(app: LandLedger) -> None:
    record(app, find("C", area_m2="1000", cultivated_m2="100"))
    record(
        app, cmd("record_rectification", "C", "2022-02-11", fine_paid_yuan="3000", restored_m2="80")
    )
    record(
        app,
        cmd("record_rectification", "C", "2022-02-12", fine_paid_yuan="3000", restored_m2="900"),
    )
    record(
        app,
        cmd("record_rectification", "C", "2022-02-13", fine_paid_yuan="0.50", demolished_m2="2000"),
    )
    records = [ev for ev in app.history("C") if isinstance(ev, e.RectificationRecorded)]
    assert sum(r.fine_paid_yuan for r in records) == 6000.50
    assert sum(r.restored_m2 for r in records) == 980


def test_other_things_a_bureau_does_are_not_rejected(app: LandLedger) -> None:
    record(
        app,
        find("C"),
        # A deadline lies ahead: a due date in the future is fine.
        cmd(
            "order_rectification", "C", "2022-02-11", measures=["罚款"], due_on=days_from_today(90)
        ),
        cmd("order_rectification", "C", "2022-02-12", measures=["补办手续"], due_on="2022-04-01"),
        cmd("refer", "C", "2022-02-12", agency="公安", persons=1),
        cmd("refer", "C", "2022-02-13", agency="公安", persons=2),
        cmd("stop", "C", "2022-02-13"),
        cmd("stop", "C", "2022-02-14", outcome="制止无效"),
        cmd("flag", "C", "2022-02-14", kind="挂牌督办"),
        cmd("flag", "C", "2022-02-14", kind="挂牌督办"),
        cmd("correct_site", "C", "2022-02-14", reason="复测", violation_types=["其他"]),
        cmd("correct_site", "C", "2022-02-14", reason="复测，无变化"),
        # Several violation types, and one given twice.
        find("D", violation_types=["占用耕地", "占用永久基本农田", "占用耕地"]),
    )
    assert app.case("C").state == "整改中"


# Roles ------------------------------------------------------------------------------------


def staff(app: LandLedger) -> None:
    """An administrator, a township officer, an enforcement officer and an auditor."""

    def register(staff_id: str, unit: str, role: str) -> dict[str, Any]:
        return {
            "cmd": "register_staff",
            "staff_id": staff_id,
            "name": staff_id,
            "unit": unit,
            "role": role,
        }

    record(
        app,
        register("admin", "执法监察大队", "管理员"),
        register("su", "苏店自然资源所", "所员"),
        register("brigade", "执法监察大队", "执法大队"),
        register("audit", "执法监察大队", "审计"),
        actor="admin",
    )


def test_before_any_staff_any_actor_is_recorded_as_given(app: LandLedger) -> None:
    record(app, find("A"), actor="谁都可以")
    (found,) = app.history("A")
    assert (found.actor, found.actor_unit) == ("谁都可以", "")


def test_roles_apply_once_staff_are_registered(app: LandLedger) -> None:
    record(app, find("SU"), find("YC", township="荫城镇", unit="荫城自然资源所"))
    staff(app)
    assert rejected(app, find("X"), actor="nobody") == "操作人 “nobody” 未在人员名录中登记"
    assert rejected(app, cmd("stop", "SU", "2022-02-11"), actor="audit") == (
        "操作人 “audit” 是审计人员，只能查看，不能记录"
    )
    # A township officer records the cases of their own unit only.
    record(app, cmd("stop", "SU", "2022-02-11"), find("SU2"), actor="su")
    assert rejected(app, cmd("stop", "YC", "2022-02-11"), actor="su") == (
        "所员只能记录本单位（苏店自然资源所）负责的案件，此案件由 荫城自然资源所 负责"
    )
    assert "所员只能记录本单位" in rejected(
        app, find("YC2", township="荫城镇", unit="荫城自然资源所"), actor="su"
    )
    # The enforcement brigade records any case; events carry the actor's unit.
    record(app, cmd("stop", "YC", "2022-02-11"), actor="brigade")
    last = app.history("YC")[-1]
    assert (last.actor, last.actor_unit) == ("brigade", "执法监察大队")
    assert app.history("SU2")[0].actor_unit == "苏店自然资源所"
    # Campaign changes are the administrator's once there is one.
    contact = {"cmd": "set_contact", "unit": "苏店自然资源所", "name": "赵六"}
    assert rejected(app, contact, actor="brigade") == "set_contact 只能由管理员记录"
    record(app, contact, actor="admin")
    assert app.campaign().contacts["苏店自然资源所"].actor_unit == "执法监察大队"


def test_a_first_registration_without_an_administrator(app: LandLedger) -> None:
    """Without an administrator registered, any registered staff member may change the campaign."""
    record(
        app,
        {
            "cmd": "register_staff",
            "staff_id": "su",
            "name": "甲",
            "unit": "苏店自然资源所",
            "role": "所员",
        },
        actor="anyone",
    )
    assert "未在人员名录中登记" in rejected(app, find("A"), actor="anyone")
    record(app, {"cmd": "set_contact", "unit": "苏店自然资源所", "name": "甲"}, actor="su")
    assert app.campaign().contacts["苏店自然资源所"].name == "甲"
