"""valid_commands(case) agrees with check(): the 办理 menu offers exactly what the rules accept."""

import itertools
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import commands as c
from domain import events as e
from domain.campaign import Campaign, load_config
from domain.case import Case, check, mutate, state_refusal, valid_commands
from domain.errors import DomainError

FOUND_ON = date(2022, 2, 10)
TODAY = date(2022, 3, 20)
CAMPAIGN = Campaign(version=1, config=load_config())
FLAGS = ("stopped", "dismissed", "filed", "decided", "rectifying", "rectified", "closed_out")

# Realistic, valid fields for every case command on a case found on FOUND_ON.
SAMPLES: dict[str, dict[str, Any]] = {
    "correct_site": {"village": "东村", "cultivated_m2": "50", "reason": "核实面积"},
    "stop": {"order_no": "上党自然资停字〔2022〕1号", "outcome": "停工"},
    "dismiss": {"reason": "不属实"},
    "file_case": {
        "case_no": "上党自然资立〔2022〕7号",
        "unit": "执法监察大队",
        "handlers": ["张三"],
    },
    "decide_penalty": {"decision_no": "上党自然资罚〔2022〕7号", "fine_yuan": "20000"},
    "refer": {"agency": "公安", "doc_no": "移字1号", "persons": 2, "reason": "涉嫌犯罪"},
    "order_rectification": {"measures": ["拆除复耕"], "due_on": "2022-03-31"},
    "record_rectification": {"demolished_m2": "30", "restored_m2": "30", "fine_paid_yuan": "500"},
    "complete_rectification": {"verified_by": "李四"},
    "close_out": {"basis": "现场核查已复耕"},
    "reopen": {"reason": "复查发现反弹"},
    "flag": {"kind": "挂牌督办", "note": "市局督办"},
}
SITE: dict[str, Any] = {
    "cmd": "find_site",
    "ref": "T-1",
    "on": FOUND_ON.isoformat(),
    "source": "巡查",
    "township": "苏店镇",
    "violation_types": ["占用耕地"],
    "area_m2": "200",
    "cultivated_m2": "100",
    "unit": "苏店自然资源所",
}


def command(name: str, on: date = FOUND_ON) -> c.CaseCommand:
    parsed = c.parse_command({"cmd": name, "ref": "T-1", "on": on.isoformat(), **SAMPLES[name]})
    assert isinstance(parsed, c.CaseCommand)
    return parsed


def found() -> Case:
    site = c.parse_command(SITE)
    assert isinstance(site, c.FindSite)
    return Case(id=uuid4(), version=1, ref="T-1", found_on=FOUND_ON, site=site)


def refused(case: Case, cmd: c.CaseCommand) -> DomainError | None:
    try:
        check(case, cmd, CAMPAIGN, TODAY)
    except DomainError as error:
        return error
    return None


def test_every_case_command_has_a_sample() -> None:
    assert set(SAMPLES) == {k.NAME for k in c.CASE_COMMANDS} - {"find_site"}


@pytest.mark.parametrize("flags", list(itertools.product([False, True], repeat=len(FLAGS))))
def test_the_menu_is_exactly_what_check_accepts(flags: tuple[bool, ...]) -> None:
    """Every combination of the state flags, reachable or not: a listed command with valid
    fields passes check(); an unlisted one is refused, with the error state_refusal names."""
    flagged: dict[str, Any] = dict(zip(FLAGS, flags, strict=True))
    case = replace(found(), **flagged)
    offered = valid_commands(case)
    assert c.FindSite not in offered
    for kind in c.CASE_COMMANDS[1:]:
        name = kind.NAME
        error = refused(case, command(name))
        if kind in offered:
            assert error is None, f"{case.state} {flags}: {name} offered but refused: {error}"
        else:
            expected = state_refusal(case, kind)
            assert error is not None and expected is not None, f"{name} not offered, accepted"
            assert (error.message, error.field) == (expected.message, expected.field)


def test_a_closed_out_case_offers_reopen_correct_and_flag() -> None:
    case = replace(found(), filed=True, decided=True, rectified=True, closed_out=True)
    assert valid_commands(case) == [c.CorrectSite, c.Reopen, c.Flag]


def test_a_new_case_offers_everything_but_decisions_close_out_and_reopen() -> None:
    names = [k.NAME for k in valid_commands(found())]
    assert names == [
        "correct_site",
        "stop",
        "dismiss",
        "file_case",
        "refer",
        "order_rectification",
        "record_rectification",
        "complete_rectification",
        "flag",
    ]


def event_of(case: Case, cmd: c.CaseCommand) -> e.CaseEvent:
    cls = e.BY_COMMAND[type(cmd)]
    assert issubclass(cls, e.CaseEvent)
    return cls(
        **cmd.model_dump(),
        originator_id=case.id,
        originator_version=case.version + 1,
        timestamp=datetime.now(UTC),
        actor="测试",
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=50), max_size=25), st.data())
def test_a_walk_through_the_menu_is_always_accepted(picks: list[int], data: st.DataObject) -> None:
    """Cases reached by real events: whatever the menu offers, check() accepts and the fold
    applies; whatever it leaves out, check() refuses."""
    case = found()
    on = FOUND_ON
    for pick in picks:
        offered = valid_commands(case)
        for kind in c.CASE_COMMANDS[1:]:
            if kind not in offered:
                assert refused(case, command(kind.NAME, on)) is not None
        kind = offered[pick % len(offered)]
        on = min(TODAY, on + timedelta(days=data.draw(st.integers(0, 3))))
        cmd = command(kind.NAME, on)
        assert refused(case, cmd) is None
        case = mutate(case, event_of(case, cmd))
