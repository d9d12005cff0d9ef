"""The dashboard's ledger queries (projections.ledger_query) on both backends: what a user
filtering, searching and sorting the 台账 would see."""

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from helpers import cmd, find, record

from projections import ledger_query as lq
from projections.alerts import CASE_ALERTS
from projections.database import Database
from projections.ledger_query import LedgerPages, LedgerQuery
from projections.readmodel import ReadModel
from service.demo import demo_commands
from service.ledger import LandLedger

TODAY = date(2022, 4, 15)


def q(**given: Any) -> LedgerQuery:
    return LedgerQuery(today=TODAY, **given)


def everything(model: ReadModel | Database, query: LedgerQuery) -> list[str]:
    return [line.ref for line in lq.page(model, query, 0, 10_000)]


@pytest.fixture
def model(app: LandLedger) -> Iterator[ReadModel]:
    record(
        app,
        find("A-01", township="苏店镇", party_name="王五", village="东村", project_name="苏店厂房"),
        find(
            "A-02",
            on="2022-02-12",
            township="韩店街道",
            unit="韩店自然资源所",
            party_name="李%四",
            area_m2="3000.00",
        ),
        find("A-03", on="2022-02-11", party_name="张_三", area_m2="500.00"),
        find("A-04", township="韩店街道", unit="韩店自然资源所", party_name="赵王五一"),
        find(
            "A-05",
            party_name="100%纯",
            violation_types=["占用永久基本农田"],
            cultivated_m2="4000.00",
            basic_farmland_m2="3500.00",
            area_m2="4000.00",
        ),
        find("B-01", township="荫城镇", unit="荫城自然资源所", project_name="Depot_X"),
        cmd("stop", "A-01", "2022-02-15", order_no="停1", outcome="停工"),
        cmd(
            "order_rectification", "A-01", "2022-02-16", measures=["拆除复耕"], due_on="2022-03-01"
        ),
        cmd("file_case", "A-03", "2022-02-13", case_no="立1", handlers=["李明"]),
        cmd("flag", "A-04", "2022-02-14", kind="挂牌督办"),
    )
    read = ReadModel(app)
    read.catch_up()
    yield read
    read.close()


def test_a_township_filter_returns_exactly_its_cases(model: ReadModel) -> None:
    assert everything(model, q(township="韩店街道")) == ["A-02", "A-04"]
    assert lq.count(model, q(township="韩店街道")) == 2
    assert everything(model, q(township="西火镇")) == []
    # Through the database alone (no campaign at hand) the filter finds the same.
    assert everything(model.db, q(township="韩店街道")) == ["A-02", "A-04"]


def test_the_default_order_is_the_official_township_order_then_the_ref(model: ReadModel) -> None:
    # 韩店街道, 苏店镇, 荫城镇 in the campaign's order (not by code point).
    assert everything(model, q()) == ["A-02", "A-04", "A-01", "A-03", "A-05", "B-01"]


def test_a_two_character_party_name_is_found(model: ReadModel) -> None:
    assert everything(model, q(text="王五")) == ["A-04", "A-01"]
    assert everything(model, q(text="东村")) == ["A-01"]  # village
    assert everything(model, q(text="厂房")) == ["A-01"]  # project
    assert everything(model, q(text="a-03")) == ["A-03"]  # ref, any case
    assert everything(model, q(text="Ａ－０３")) == ["A-03"]  # typed in full-width
    assert everything(model, q(text="depot_x")) == ["B-01"]
    assert everything(model, q(text="王五 苏店")) == ["A-01"]  # every term must match
    assert lq.count(model, q(text="王五")) == 2


def test_percent_and_underscore_are_searched_as_themselves(model: ReadModel) -> None:
    assert everything(model, q(text="%")) == ["A-02", "A-05"]
    assert everything(model, q(text="_")) == ["A-03", "B-01"]
    assert everything(model, q(text="李%四")) == ["A-02"]
    assert everything(model, q(text="张_三")) == ["A-03"]
    assert everything(model, q(text="李_四")) == []
    assert everything(model, q(text="\\")) == []
    assert lq.count(model, q(text="%")) == 2


def test_sorts_in_either_direction(model: ReadModel) -> None:
    by_area = everything(model, q(sort="area"))
    assert by_area[0] == "A-03" and by_area[-1] == "A-05"
    assert everything(model, q(sort="area", descending=True)) == by_area[::-1]
    assert everything(model, q(sort="ref")) == ["A-01", "A-02", "A-03", "A-04", "A-05", "B-01"]
    assert everything(model, q(sort="ref", descending=True))[0] == "B-01"
    assert everything(model, q(sort="found_on", descending=True))[0] == "A-02"
    # Ties in the key are broken by the ref, in the same direction.
    found = everything(model, q(sort="found_on"))
    assert found == ["A-01", "A-04", "A-05", "B-01", "A-03", "A-02"]
    assert everything(model, q(sort="due_on"))[0] == "A-01"  # the only one with a due date
    # States in DESIGN's order: 已发现 before 已制止 before 已立案 before 整改中.
    by_state = everything(model, q(sort="state"))
    assert by_state[-2:] == ["A-03", "A-01"]


def test_filters_combine_and_page(model: ReadModel) -> None:
    assert everything(model, q(state="已立案")) == ["A-03"]
    assert everything(model, q(unit="荫城自然资源所")) == ["B-01"]
    assert everything(model, q(violation_type="占用永久基本农田")) == ["A-05"]
    assert everything(model, q(township="苏店镇", text="王")) == ["A-01"]
    assert [r.ref for r in lq.page(model, q(sort="ref"), 2, 2)] == ["A-03", "A-04"]
    assert lq.page(model, q(sort="ref"), 6, 10) == []
    # Given the count, pages past the middle are read from the far end: the same rows.
    for query in (q(sort="ref"), q(sort="area", descending=True), q(text="a-")):
        total = lq.count(model, query)
        for offset in range(total + 1):
            for limit in (1, 2, 3):
                assert lq.page(model, query, offset, limit, total) == lq.page(
                    model, query, offset, limit
                ), (query, offset, limit)


def test_each_alert_filter_finds_what_the_alerts_list(app: LandLedger, model: ReadModel) -> None:
    record(app, *demo_commands(app.campaign().config, 60, seed=3))
    model.catch_up()
    listed = {a.kind: a for a in model.alerts(TODAY, app.campaign(), listed=1000)}
    for kind in CASE_ALERTS:
        query = q(alert=kind)
        if kind in listed:
            assert lq.count(model, query) == listed[kind].count, kind
            assert everything(model, query) == listed[kind].first, kind
    assert lq.count(model, q(alert="overdue")) > 0
    assert "A-01" in everything(model, q(alert="overdue"))  # due 2022-03-01, not rectified
    assert everything(model, q(alert="supervised", text="a-")) == ["A-04"]
    assert "A-05" in everything(model, q(alert="crime"))


def test_a_row_shows_what_the_table_needs(model: ReadModel) -> None:
    (line,) = lq.page(model, q(text="a-01"), 0, 10)
    shown = (line.ref, line.township, line.village, line.party_name)
    assert shown == ("A-01", "苏店镇", "东村", "王五")
    assert line.state == "整改中" and line.overdue
    assert line.due_on == date(2022, 3, 1) and line.found_on == date(2022, 2, 10)
    assert str(line.area_m2) == "1000.00"


def test_position_and_the_pages_adapter(model: ReadModel) -> None:
    assert lq.position(model, q(sort="ref"), "A-04") == 3
    assert lq.position(model, q(sort="ref", descending=True), "A-04") == 2
    assert lq.position(model, q(township="荫城镇"), "A-04") is None
    pages = LedgerPages(model)
    assert pages.count(q()) == 6
    assert [r.ref for r in pages.page(q(), 0, 2)] == ["A-02", "A-04"]


def test_a_very_long_name_is_recorded_and_found_by_its_start(
    app: LandLedger, model: ReadModel
) -> None:
    # The longest text the domain takes. A sort index holds the searched text: on PostgreSQL an
    # would stop the read model, so each field is searched in its first characters only.
    varied = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(1999))  # compresses badly
    record(app, find("L-01", project_name=varied, party_name="钱" + varied))
    model.catch_up()
    assert everything(model, q(text=varied[:5])) == ["L-01"]
    assert everything(model, q(text="钱")) == ["L-01"]


def test_a_new_event_and_a_rebuild_change_what_is_found(app: LandLedger, model: ReadModel) -> None:
    record(app, cmd("correct_site", "B-01", "2022-02-20", party_name="孙七", reason="更正"))
    model.catch_up()
    assert everything(model, q(text="孙七")) == ["B-01"]
    before = [everything(model, q(sort=s)) for s in lq.SORTS]
    model.rebuild()
    assert [everything(model, q(sort=s)) for s in lq.SORTS] == before
    assert everything(model, q(text="孙七")) == ["B-01"]


def test_a_header_click_cycles_the_sort() -> None:
    query = LedgerQuery()
    assert query.cycled("area") == LedgerQuery(sort="area")
    assert query.cycled("area").cycled("area") == LedgerQuery(sort="area", descending=True)
    assert query.cycled("area").cycled("area").cycled("area") == LedgerQuery()
    with pytest.raises(ValueError):
        LedgerQuery(sort="party")
    with pytest.raises(ValueError):
        LedgerQuery(alert="nothing")
