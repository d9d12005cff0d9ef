"""Decimal, date, enum and Chinese text round-trip exactly through both stores."""

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import cli, cmd, find, jsonl, record, rejected

from domain import events as e
from service.ledger import LandLedger

TEXT = "𪚥村 “引号” \\反斜杠\\ 🚜 ㎡ 〔2022〕"


def reopened(db_url: str) -> LandLedger:
    return LandLedger(db_url)


def test_every_value_reads_back_exactly_from_a_fresh_connection(
    app: LandLedger, db_url: str
) -> None:
    record(
        app,
        find(
            "RT-1",
            on="2022-02-10",
            area_m2="0.10",
            cultivated_m2="0.10",
            basic_farmland_m2="0",
            eco_redline_m2="0.00",
            building_area_m2="99999999.99",  # DESIGN's bound: 100,000,000 ㎡
            lon=Decimal("112.123456789"),  # a JSON number, never text
            lat=Decimal("-36.050"),
            village=TEXT,
            party_name="  张三  ",
            party_id_no="14042119900101123X",
            party_phone="0355-1234567",
            party_kind="个人",
            source="卫片",
            violation_types=["侵占生态保护红线", "无规划许可"],
            major_hazard=True,
            note="第一行\n第二行",
        ),
        cmd("file_case", "RT-1", "2022-02-11", case_no="立〔2022〕1号", handlers=["王五", "赵六"]),
        cmd(
            "decide_penalty",
            "RT-1",
            "2022-02-28",
            decision_no="罚1",
            fine_yuan="1234567.89",
            confiscated_income_yuan="0.01",
        ),
        cmd(
            "order_rectification",
            "RT-1",
            "2022-03-01",
            measures=["补办手续", "罚款"],
            due_on="2022-12-31",
        ),
        actor="操作员-甲",
    )
    written = app.history("RT-1")
    other = reopened(db_url)
    try:
        read = other.history("RT-1")
        from_log = [ev for ev in other.all_events() if isinstance(ev, e.CaseEvent)]
    finally:
        other.close()
    assert read == written == from_log
    found = read[0]
    assert isinstance(found, e.SiteFound)
    assert str(found.area_m2) == "0.10" and isinstance(found.area_m2, Decimal)
    assert str(found.eco_redline_m2) == "0.00"
    assert found.basic_farmland_m2 == Decimal(0)
    assert found.building_area_m2 == Decimal("99999999.99")
    assert (found.lon, found.lat) == (Decimal("112.123456789"), Decimal("-36.050"))
    assert str(found.lat) == "-36.050"
    assert found.village == TEXT
    assert found.party_name == "张三"  # surrounding spaces are not data
    assert found.party_id_no == "14042119900101123X"
    assert found.violation_types == ("侵占生态保护红线", "无规划许可")
    assert found.major_hazard is True
    assert found.note == "第一行\n第二行"
    assert found.on == date(2022, 2, 10) and type(found.on) is date
    assert found.actor == "操作员-甲"
    assert found.timestamp.tzinfo is not None
    decided, ordered = read[2], read[3]
    assert isinstance(decided, e.PenaltyDecided) and isinstance(ordered, e.RectificationOrdered)
    assert str(decided.fine_yuan) == "1234567.89"
    assert str(decided.confiscated_income_yuan) == "0.01"
    assert ordered.due_on == date(2022, 12, 31)
    assert ordered.measures == ("补办手续", "罚款")


def test_amounts_are_stored_as_exact_decimal_text(app: LandLedger) -> None:
    """Never a float: the stored JSON holds the decimal as written."""
    record(app, find("RT-2", area_m2="0.10", cultivated_m2="0.1"))
    stored = app.recorder.select_events(app.case_id("RT-2"))[0]
    state = json.loads(stored.state)
    assert state["area_m2"] == "0.10"
    assert state["cultivated_m2"] == "0.1"
    assert state["on"] == "2022-02-10"
    assert state["township"] == "苏店镇"


@pytest.mark.backends("sqlite")  # a conversion before any write
@pytest.mark.parametrize(
    ("mu", "m2"),
    [
        ("1.5", "1000.00"),
        ("1", "666.67"),
        ("5", "3333.33"),
        ("15", "10000.00"),
        ("0.0000075", "0.01"),  # exactly 0.005 ㎡: half-up, not half-even
        ("0.0000375", "0.03"),  # exactly 0.025 ㎡
        ("0.0000074", "0.00"),
        ("0", "0.00"),
    ],
)
def test_area_in_mu_converts_half_up_to_a_hundredth(app: LandLedger, mu: str, m2: str) -> None:
    site = find("MU", area_mu=mu)
    del site["area_m2"]
    record(app, site)
    assert str(app.case("MU").site.area_m2) == m2


def test_every_area_may_be_given_in_mu(app: LandLedger) -> None:
    site = find("MU", area_mu="3", cultivated_mu="2", basic_farmland_mu="1.5", eco_redline_mu=1)
    del site["area_m2"]
    record(
        app,
        site,
        cmd("correct_site", "MU", "2022-02-11", reason="复测", building_area_mu="0.3"),
        cmd("record_rectification", "MU", "2022-02-12", restored_mu="1.5", demolished_mu="0.75"),
    )
    stored = app.case("MU").site
    assert (stored.area_m2, stored.cultivated_m2) == (Decimal("2000.00"), Decimal("1333.33"))
    assert (stored.basic_farmland_m2, stored.eco_redline_m2) == (
        Decimal("1000.00"),
        Decimal("666.67"),
    )
    assert stored.building_area_m2 == Decimal("200.00")
    recorded = app.history("MU")[-1]
    assert isinstance(recorded, e.RectificationRecorded)
    assert (recorded.restored_m2, recorded.demolished_m2) == (Decimal("1000.00"), Decimal("500.00"))


@pytest.mark.backends("sqlite")  # a command's validation
def test_an_area_given_both_ways_is_rejected(app: LandLedger) -> None:
    message = rejected(app, find("MU", area_mu="1"))  # find() also gives area_m2
    assert message == "占地面积：area_mu 与 area_m2 只能填一个"


def test_json_numbers_through_the_command_line_stay_exact(
    app: LandLedger, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "numbers.jsonl"
    line = (
        '{"cmd": "find_site", "ref": "N-1", "on": "2022-02-10", "source": "举报", '
        '"township": "韩店街道", "unit": "韩店自然资源所", "violation_types": ["其他"], '
        '"area_m2": 0.10, "cultivated_m2": 0.1, "eco_redline_m2": 0, "lon": 113.10}\n'
    )
    path.write_text(line, encoding="utf-8")
    code, _, err = cli("--db", db_url, "record", "--file", str(path))
    assert code == 0, err
    site = app.case("N-1").site
    assert str(site.area_m2) == "0.10"
    assert str(site.cultivated_m2) == "0.1"
    assert str(site.lon) == "113.10"
    code, _, _ = cli("--db", db_url, "record", stdin=jsonl([cmd("stop", "N-1", "2022-02-11")]))
    assert code == 0
    (found, _stop) = app.history("N-1")
    assert isinstance(found, e.SiteFound) and found.township == "韩店街道"


def test_the_campaign_round_trips(app: LandLedger, db_url: str) -> None:
    campaign = app.campaign()
    other = reopened(db_url)
    try:
        again = other.campaign()
    finally:
        other.close()
    assert again.config == campaign.config
    assert again.config.alerts.crime_basic_farmland_mu == Decimal(5)
    assert again.config.townships[0] == "韩店街道"
    assert again.deadlines["survey"] == date(2022, 2, 28)


def test_exponent_and_negative_zero_amounts_are_stored_in_fixed_point(
    app: LandLedger, db_url: str
) -> None:
    """1e3 is a valid JSON number: it must neither be stored as 1E+3 nor break the statistics."""
    code, _, err = cli(
        "--db",
        db_url,
        "record",
        stdin=jsonl([find("X-1", area_m2=Decimal("1e3"), cultivated_m2="-0.00")]),
    )
    assert code == 0, err
    site = app.case("X-1").site
    assert (str(site.area_m2), str(site.cultivated_m2)) == ("1000", "0.00")
    code, out, _ = cli("--db", db_url, "history", "X-1")
    assert code == 0
    assert "占地面积=1000" in out
    assert "E+" not in out and "=-" not in out
    code, out, err = cli("--db", db_url, "stats", "--json")
    assert code == 0, err
    assert json.loads(out)["total"]["area_m2"] == "1000.00"
    assert json.loads(out)["total"]["cultivated_m2"] == "0.00"
