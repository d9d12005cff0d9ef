"""Each statistics measure of DESIGN against small cases computed by hand, through
`landledger stats --json`: each measure's definition on SQLite; the SQL sums of an empty store,
of every measure and their JSON types on both backends (the property tests of
tests/test_projections.py compare the read model with a replay on both, at every cutoff)."""

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from helpers import (
    AMOUNT_MEASURES,
    COUNT_MEASURES,
    TOWNSHIPS,
    UNITS,
    VIOLATION_TYPES,
    cmd,
    find,
    group,
    measures,
    record,
    stats,
)

from service.ledger import LandLedger

pytestmark = pytest.mark.backends("sqlite")  # see the module's docstring


def total(db: str, *options: str) -> dict[str, Any]:
    result: dict[str, Any] = stats(db, *options)["total"]
    return result


@pytest.mark.backends("sqlite", "postgres")  # sums over no rows
def test_an_empty_store(app: LandLedger, db_url: str) -> None:
    result = stats(db_url)
    assert result == {
        "as_of": None,
        "known_at": None,
        "by": "township",
        "groups": [{"key": key, **measures()} for key in TOWNSHIPS],
        "total": measures(),
    }
    assert stats(db_url, "--by", "month")["groups"] == []


@pytest.mark.backends("sqlite", "postgres")  # every summed column
def test_every_measure_of_one_full_case(app: LandLedger, db_url: str) -> None:
    ref = "F-1"
    record(
        app,
        find(
            ref,
            area_m2="1000",
            cultivated_m2="600",
            basic_farmland_m2="200",
            eco_redline_m2="50.5",
            major_hazard=True,
        ),
        cmd("stop", ref, "2022-02-11"),
        cmd("stop", ref, "2022-02-12", outcome="停工"),
        cmd("file_case", ref, "2022-02-12", case_no="立1", unit="执法监察大队"),
        cmd(
            "decide_penalty",
            ref,
            "2022-02-20",
            decision_no="罚1",
            fine_yuan="5000",
            confiscated_income_yuan="1000.50",
            demolish_m2="300",
        ),
        cmd("refer", ref, "2022-02-21", agency="公安", persons=2),
        cmd("refer", ref, "2022-02-22", agency="公安", persons=1),
        cmd("refer", ref, "2022-02-22", agency="纪检监察", persons=3),
        cmd("refer", ref, "2022-02-23", agency="住建"),
        cmd("refer", ref, "2022-02-23", agency="法院", persons=4),
        cmd("order_rectification", ref, "2022-02-24", measures=["拆除复耕"], due_on="2022-03-31"),
        cmd(
            "record_rectification",
            ref,
            "2022-03-01",
            demolished_m2="100",
            restored_m2="150",
            fine_paid_yuan="3000",
        ),
        cmd(
            "record_rectification", ref, "2022-03-02", fine_paid_yuan="3000.50", permit_doc_no="补1"
        ),
        cmd("record_rectification", ref, "2022-03-03", permit_doc_no="补2", restored_m2="0.25"),
        cmd("complete_rectification", ref, "2022-03-04"),
        cmd("close_out", ref, "2022-03-05"),
    )
    expected = measures(
        found=1,
        violations=1,
        area_m2="1000.00",
        cultivated_m2="600.00",
        basic_farmland_m2="200.00",
        eco_redline_m2="50.50",
        major_hazards=1,
        major_hazards_rectified=1,
        stopped=1,
        filed=1,
        decided=1,
        fines_decided_yuan="6000.50",
        fines_paid_yuan="6000.50",
        demolished_m2="100.00",
        restored_m2="150.25",
        referred_police=1,
        referred_police_persons=3,
        referred_discipline=1,
        referred_discipline_persons=3,
        referred_other=1,
        permits=1,
        rectified=1,
        closed_out=1,
        open=0,
        rectification_rate="1.0000",
    )
    result = stats(db_url)
    assert result["total"] == expected
    assert group(result, "苏店镇") == expected
    assert group(result, "韩店街道") == measures()
    # The unit is the responsible one of find_site, not the filing unit.
    by_unit = stats(db_url, "--by", "unit")
    assert group(by_unit, "苏店自然资源所") == expected
    assert group(by_unit, "执法监察大队") == measures()
    # Before the decision, referrals and rectification.
    assert total(db_url, "--as-of", "2022-02-19") == measures(
        found=1,
        violations=1,
        area_m2="1000.00",
        cultivated_m2="600.00",
        basic_farmland_m2="200.00",
        eco_redline_m2="50.50",
        major_hazards=1,
        stopped=1,
        filed=1,
        open=1,
    )
    # Rectifying: a hazard not yet rectified; the closed-out state not yet reached.
    assert total(db_url, "--as-of", "2022-03-03") == {
        **expected,
        "major_hazards_rectified": 0,
        "rectified": 0,
        "closed_out": 0,
        "open": 1,
        "rectification_rate": "0.0000",
    }
    assert total(db_url, "--as-of", "2022-03-04") == {
        **expected,
        "closed_out": 0,
        "open": 1,
    }


def test_dismiss_then_reopen(app: LandLedger, db_url: str) -> None:
    record(
        app,
        find("A", area_m2="100"),
        find("B", area_m2="200"),
        find("C", area_m2="400"),
        cmd("stop", "A", "2022-02-11"),
        cmd("stop", "B", "2022-02-11"),
        cmd("dismiss", "A", "2022-02-15", reason="不属实"),
        cmd("dismiss", "B", "2022-02-20", reason="重复"),
        cmd("reopen", "A", "2022-03-01", reason="排除有误"),
    )

    def expect(dismissed: int, area: str, stopped: int) -> dict[str, Any]:
        violations = 3 - dismissed
        return measures(
            found=3,
            dismissed=dismissed,
            violations=violations,
            area_m2=area,
            stopped=stopped,
            open=violations,
        )

    assert total(db_url, "--as-of", "2022-02-10") == expect(0, "700.00", 0)
    assert total(db_url, "--as-of", "2022-02-14") == expect(0, "700.00", 2)
    assert total(db_url, "--as-of", "2022-02-15") == expect(1, "600.00", 1)  # A out
    assert total(db_url, "--as-of", "2022-02-28") == expect(2, "400.00", 0)  # A and B out
    assert total(db_url, "--as-of", "2022-03-01") == expect(1, "500.00", 1)  # A back
    assert total(db_url) == expect(1, "500.00", 1)


def test_a_dismissed_rectified_case_reopened_is_open_work(app: LandLedger, db_url: str) -> None:
    record(
        app,
        find("A", major_hazard=True),
        cmd("complete_rectification", "A", "2022-02-11"),
        cmd("dismiss", "A", "2022-02-12", reason="其他"),
        cmd("reopen", "A", "2022-02-13", reason="有误"),
    )
    common = {"found": 1, "area_m2": "1000.00", "major_hazards": 1}
    assert total(db_url, "--as-of", "2022-02-11") == measures(
        **common, violations=1, major_hazards_rectified=1, rectified=1, open=1,
        rectification_rate="1.0000",
    )  # fmt: skip
    assert total(db_url, "--as-of", "2022-02-12") == measures(
        found=1, dismissed=1
    )  # fmt: skip
    assert total(db_url) == measures(**common, violations=1, open=1)


def test_a_correction_applies_at_every_as_of_date(app: LandLedger, db_url: str) -> None:
    record(
        app,
        find("A", on="2022-02-10", area_m2="1000", violation_types=["占用耕地"]),
        cmd("stop", "A", "2022-02-11"),
    )
    between = datetime.now(UTC).isoformat()
    record(
        app,
        cmd(
            "correct_site",
            "A",
            "2022-03-15",
            reason="复测",
            township="荫城镇",
            unit="荫城自然资源所",
            area_m2="1500.5",
            cultivated_m2="1200",
            violation_types=["无规划许可", "侵占生态保护红线"],
            major_hazard=True,
        ),
    )
    corrected = measures(
        found=1,
        violations=1,
        area_m2="1500.50",
        cultivated_m2="1200.00",
        major_hazards=1,
        stopped=1,
        open=1,
    )
    for options in [(), ("--as-of", "2022-02-11"), ("--as-of", "2022-03-14")]:
        result = stats(db_url, *options)
        assert result["total"] == corrected
        assert group(result, "荫城镇") == corrected
        assert group(result, "苏店镇") == measures()
    assert group(stats(db_url, "--by", "unit", "--as-of", "2022-02-11"), "荫城自然资源所") == (
        corrected
    )
    by_type = stats(db_url, "--by", "violation_type", "--as-of", "2022-02-11")
    assert group(by_type, "无规划许可") == group(by_type, "侵占生态保护红线") == corrected
    assert group(by_type, "占用耕地") == measures()
    # --known-at: what the ledger said before the correction was recorded.
    known = stats(db_url, "--known-at", between)
    assert datetime.fromisoformat(known["known_at"]) == datetime.fromisoformat(between)
    assert group(known, "苏店镇") == measures(
        found=1, violations=1, area_m2="1000.00", stopped=1, open=1
    )


def test_a_known_at_without_an_offset_is_china_time(app: LandLedger, db_url: str) -> None:
    record(app, find("A"))
    soon = datetime.now(UTC) + timedelta(minutes=1)
    china_wall = soon.astimezone(timezone(timedelta(hours=8))).replace(tzinfo=None)
    utc_wall = soon.replace(tzinfo=None)
    assert total(db_url, "--known-at", china_wall.isoformat())["found"] == 1
    # The same wall-clock digits read as China time are eight hours earlier than in UTC.
    assert total(db_url, "--known-at", utc_wall.isoformat())["found"] == 0
    assert total(db_url, "--known-at", "2022-01-01")["found"] == 0


def test_an_as_of_cutoff_keeps_events_dated_on_or_before_it(app: LandLedger, db_url: str) -> None:
    record(
        app,
        find("A", on="2022-02-10"),
        cmd("file_case", "A", "2022-03-05", case_no="立1"),
        cmd("decide_penalty", "A", "2022-03-10", decision_no="罚1", fine_yuan="100"),
        cmd("record_rectification", "A", "2022-03-12", fine_paid_yuan="40", restored_m2="10"),
        cmd("record_rectification", "A", "2022-03-20", fine_paid_yuan="60", demolished_m2="5"),
        find("B", on="2022-03-01", area_m2="50"),
    )
    # The stop was entered late, dated before the filing.
    record(app, cmd("stop", "A", "2022-02-20", order_no="停1"))
    base = {"found": 1, "violations": 1, "area_m2": "1000.00", "open": 1}
    assert total(db_url, "--as-of", "2022-02-19") == measures(**base)
    assert total(db_url, "--as-of", "2022-02-28") == measures(**base, stopped=1)
    two = {**base, "found": 2, "violations": 2, "open": 2, "area_m2": "1050.00"}
    assert total(db_url, "--as-of", "2022-03-04") == measures(**two, stopped=1)
    assert total(db_url, "--as-of", "2022-03-05") == measures(**two, stopped=1, filed=1)
    assert total(db_url, "--as-of", "2022-03-09") == measures(**two, stopped=1, filed=1)
    decided = {**two, "stopped": 1, "filed": 1, "decided": 1, "fines_decided_yuan": "100.00"}
    assert total(db_url, "--as-of", "2022-03-10") == measures(**decided)
    assert total(db_url, "--as-of", "2022-03-19") == measures(
        **decided, fines_paid_yuan="40.00", restored_m2="10.00"
    )
    assert total(db_url) == measures(
        **decided, fines_paid_yuan="100.00", restored_m2="10.00", demolished_m2="5.00"
    )
    result = stats(db_url, "--as-of", "2022-02-28")
    assert (result["as_of"], result["known_at"]) == ("2022-02-28", None)


# The crime threshold ----------------------------------------------------------------------

THRESHOLD_CASES = [
    # (basic farmland ㎡, cultivated ㎡, counts): each side in 亩, rounded half-up to 0.01.
    ("3333.33", "3333.33", True),  # 4.999995 亩 → 5.00
    ("3330.00", "3330.00", True),  # 4.995 亩 → 5.00: the true boundary
    ("3329.99", "3329.99", False),  # 4.994985 亩 → 4.99
    ("0", "6663.34", True),  # other 9.99501 亩 → 10.00
    ("0", "6663.33", False),  # other 9.994995 亩 → 9.99
    ("2336.66", "9000.00", True),  # other 6663.34 ㎡, taken exactly in ㎡
    ("2336.67", "9000.00", False),  # other 6663.33 ㎡ → 9.99; basic 3.50
    ("3329.99", "9993.32", False),  # neither side reaches its threshold; no sum rule
    ("10000", "20000", True),
]


@pytest.mark.parametrize(("basic", "cultivated", "counts"), THRESHOLD_CASES)
def test_the_crime_threshold_rounds_each_side_half_up(
    app: LandLedger, db_url: str, basic: str, cultivated: str, counts: bool
) -> None:
    record(
        app,
        find("T", area_m2="20000", cultivated_m2=cultivated, basic_farmland_m2=basic),
    )
    assert total(db_url)["over_crime_threshold_unreferred"] == int(counts)


def test_the_threshold_in_mu_input(app: LandLedger, db_url: str) -> None:
    # 5 亩 given as 亩 is 3333.33 ㎡.
    record(app, find("T", area_m2="20000", cultivated_mu="5", basic_farmland_mu="5"))
    assert total(db_url)["basic_farmland_m2"] == "3333.33"
    assert total(db_url)["over_crime_threshold_unreferred"] == 1


def test_the_crime_threshold_and_referrals(app: LandLedger, db_url: str) -> None:
    big = {"area_m2": "20000", "cultivated_m2": "5000", "basic_farmland_m2": "5000"}
    record(
        app,
        find("POLICE", **big),
        cmd("refer", "POLICE", "2022-03-01", agency="公安", persons=1),
        find("DISCIPLINE", **big),
        cmd("refer", "DISCIPLINE", "2022-02-11", agency="纪检监察"),
        # Closed out without a referral: exactly what an auditor looks for.
        find("CLOSED", **big),
        cmd("complete_rectification", "CLOSED", "2022-02-11"),
        cmd("close_out", "CLOSED", "2022-02-12"),
        find("DISMISSED", **big),
        cmd("dismiss", "DISMISSED", "2022-02-11", reason="非违法"),
        # Corrected below the threshold: the corrected values count.
        find("CORRECTED", **big),
        cmd("correct_site", "CORRECTED", "2022-03-10", reason="复测", basic_farmland_m2="100"),
    )
    assert total(db_url)["over_crime_threshold_unreferred"] == 2
    # Before the referral to 公安 that case was unreferred.
    assert total(db_url, "--as-of", "2022-02-28")["over_crime_threshold_unreferred"] == 3


# Overdue ----------------------------------------------------------------------------------


def test_overdue_is_strictly_before_the_cutoff_and_not_rectified(
    app: LandLedger, db_url: str
) -> None:
    def order(ref: str, on: str, due: str) -> dict[str, Any]:
        return cmd("order_rectification", ref, on, measures=["拆除复耕"], due_on=due)

    record(
        app,
        find("A"),
        order("A", "2022-02-11", "2022-03-01"),
        cmd("record_rectification", "A", "2022-02-20", demolished_m2="10"),
        find("B"),
        order("B", "2022-02-11", "2022-03-01"),
        cmd("complete_rectification", "B", "2022-03-05"),
        find("C"),
        order("C", "2022-02-11", "2022-03-01"),
        cmd("complete_rectification", "C", "2022-02-25"),
        cmd("close_out", "C", "2022-02-26"),
        cmd("reopen", "C", "2022-03-10", reason="复建"),  # keeps its due_on
        find("D"),
        order("D", "2022-02-11", "2022-03-01"),
        order("D", "2022-03-05", "2022-04-30"),  # the latest order sets the deadline
        find("E"),
        order("E", "2022-02-11", "2022-02-20"),
        cmd("dismiss", "E", "2022-02-21", reason="不属实"),
        find("F"),  # rectified without an order: nothing to be late for
        cmd("record_rectification", "F", "2022-02-11"),
    )

    def overdue(as_of: str | None = None) -> int:
        options = ("--as-of", as_of) if as_of else ()
        result: int = total(db_url, *options)["overdue"]
        return result

    assert overdue("2022-03-01") == 0  # due on the cutoff is not yet overdue
    assert overdue("2022-03-02") == 3  # A, B, D
    assert overdue("2022-03-04") == 3
    assert overdue("2022-03-05") == 1  # B completed, D given a new deadline
    assert overdue("2022-03-09") == 1
    assert overdue("2022-03-10") == 2  # C reopened
    assert overdue("2022-04-30") == 2
    assert overdue("2022-05-01") == 3  # D again
    assert overdue() == 3  # today


# The rate and the JSON types --------------------------------------------------------------


@pytest.mark.parametrize(
    ("cases", "rectified", "rate"),
    [(3, 1, "0.3333"), (3, 2, "0.6667"), (16, 13, "0.8125"), (32, 1, "0.0313"), (1, 0, "0.0000")],
)
def test_the_rectification_rate_has_four_places_half_up(
    app: LandLedger, db_url: str, cases: int, rectified: int, rate: str
) -> None:
    commands = [find(f"R-{i}") for i in range(cases)]
    commands += [cmd("complete_rectification", f"R-{i}", "2022-02-11") for i in range(rectified)]
    commands += [find("GONE"), cmd("dismiss", "GONE", "2022-02-11", reason="重复")]  # not counted
    record(app, *commands)
    result = total(db_url)
    assert (result["violations"], result["rectified"]) == (cases, rectified)
    assert result["rectification_rate"] == rate


def test_a_rate_with_no_violations_is_zero(app: LandLedger, db_url: str) -> None:
    record(app, find("A"), cmd("dismiss", "A", "2022-02-11", reason="重复"))
    assert total(db_url)["rectification_rate"] == "0.0000"


@pytest.mark.backends("sqlite", "postgres")  # the SQL sums' types
def test_json_types_counts_amounts_and_rate(app: LandLedger, db_url: str) -> None:
    record(
        app,
        find("A", area_m2="0.1", cultivated_m2=0, major_hazard=True),
        find("B", area_m2="3333.33", cultivated_m2="3333.33", basic_farmland_m2="3333.33"),
        find("C", area_m2="99999999.99"),
        cmd("file_case", "C", "2022-02-11", case_no="立"),
        cmd("decide_penalty", "C", "2022-02-12", decision_no="罚", fine_yuan="999999999.99"),
    )
    result = stats(db_url)
    for block in [result["total"], *result["groups"]]:
        for name in COUNT_MEASURES:
            assert type(block[name]) is int, name
        for name in AMOUNT_MEASURES:
            assert isinstance(block[name], str) and re.fullmatch(r"\d+\.\d\d", block[name]), name
        assert re.fullmatch(r"[01]\.\d{4}", block["rectification_rate"])
        assert set(block) - {"key"} == set(measures())
    assert result["total"]["area_m2"] == "100003333.42"  # exact: 0.10 + 3333.33 + 99999999.99
    assert result["total"]["fines_decided_yuan"] == "999999999.99"
    assert result["total"]["over_crime_threshold_unreferred"] == 1


# Groups -----------------------------------------------------------------------------------


def test_groups_come_in_official_order_with_empty_groups(app: LandLedger, db_url: str) -> None:
    record(app, find("A", township="北呈乡", unit="耕地保护股", violation_types=["其他"]))
    assert [g["key"] for g in stats(db_url)["groups"]] == list(TOWNSHIPS)
    assert [g["key"] for g in stats(db_url, "--by", "township")["groups"]] == list(TOWNSHIPS)
    assert [g["key"] for g in stats(db_url, "--by", "unit")["groups"]] == list(UNITS)
    by_type = stats(db_url, "--by", "violation_type")
    assert [g["key"] for g in by_type["groups"]] == list(VIOLATION_TYPES)
    assert by_type["by"] == "violation_type"
    assert group(by_type, "其他")["found"] == 1
    assert sum(g["found"] for g in by_type["groups"]) == 1


def test_violation_type_groups_overlap(app: LandLedger, db_url: str) -> None:
    record(
        app,
        find("A", violation_types=["占用耕地", "占用永久基本农田"], area_m2="100"),
        find("B", violation_types=["占用耕地", "占用耕地"], area_m2="10"),
        find("C", violation_types=["无规划许可"], area_m2="1"),
    )
    result = stats(db_url, "--by", "violation_type")
    assert group(result, "占用耕地")["found"] == 2
    assert group(result, "占用耕地")["area_m2"] == "110.00"  # B once, though listed twice
    assert group(result, "占用永久基本农田")["area_m2"] == "100.00"
    assert group(result, "无规划许可")["found"] == 1
    assert result["total"]["found"] == 3
    assert result["total"]["area_m2"] == "111.00"


def test_months_run_from_the_first_to_the_last_month_with_a_case(
    app: LandLedger, db_url: str
) -> None:
    record(
        app,
        find("A", on="2021-11-20", area_m2="1"),
        find("B", on="2022-02-03", area_m2="2"),
        find("C", on="2022-02-28", area_m2="4"),
        cmd("file_case", "A", "2022-02-15", case_no="立"),  # counts in the month it was found
        find("D", on="2022-04-01", area_m2="8"),
        cmd("dismiss", "D", "2022-04-02", reason="重复"),  # a dismissed case is still a case found
    )
    result = stats(db_url, "--by", "month")
    assert [g["key"] for g in result["groups"]] == [
        "2021-11",
        "2021-12",
        "2022-01",
        "2022-02",
        "2022-03",
        "2022-04",
    ]
    assert group(result, "2021-11") == measures(
        found=1, violations=1, area_m2="1.00", filed=1, open=1
    )
    assert group(result, "2021-12") == measures()
    assert group(result, "2022-02")["area_m2"] == "6.00"
    assert group(result, "2022-04") == measures(found=1, dismissed=1)
    cut = stats(db_url, "--by", "month", "--as-of", "2022-02-10")
    assert [g["key"] for g in cut["groups"]] == ["2021-11", "2021-12", "2022-01", "2022-02"]
    assert group(cut, "2021-11")["filed"] == 0
