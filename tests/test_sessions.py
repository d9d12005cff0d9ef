"""Several terminal sessions on one store: each sees the others' writes, and a stale view of a
case is checked again against what is stored before anything is written."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from domain.commands import parse_command
from domain.errors import DomainError
from projections.readmodel import ReadModel
from service.ledger import LandLedger

SITE = {
    "cmd": "find_site",
    "ref": "S-1",
    "on": "2022-02-10",
    "source": "举报",
    "township": "西火镇",
    "unit": "西火自然资源所",
    "violation_types": ["无规划许可"],
    "area_m2": "800",
}


@contextmanager
def two_sessions(db_url: str) -> Iterator[tuple[LandLedger, LandLedger]]:
    first, second = LandLedger(db_url), LandLedger(db_url)
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def record(app: LandLedger, *commands: dict[str, Any]) -> None:
    app.record([parse_command(c) for c in commands], "staff")


def test_a_stale_case_is_reloaded_and_the_command_still_recorded(db_url: str) -> None:
    with two_sessions(db_url) as (first, second):
        record(first, SITE)  # the first session now holds S-1 at version 1
        record(second, {"cmd": "stop", "ref": "S-1", "on": "2022-02-11"})
        record(first, {"cmd": "file_case", "ref": "S-1", "on": "2022-02-12", "case_no": "L"})
        kinds = [type(event).__name__ for event in first.history("S-1")]
        assert kinds == ["SiteFound", "Stopped", "CaseFiled"]
        assert first.case("S-1").state == "已立案"


def test_a_command_no_longer_valid_after_another_sessions_write_is_refused(db_url: str) -> None:
    with two_sessions(db_url) as (first, second):
        record(first, SITE)
        record(second, {"cmd": "file_case", "ref": "S-1", "on": "2022-02-12", "case_no": "L1"})
        with pytest.raises(DomainError, match="已立案"):
            record(first, {"cmd": "file_case", "ref": "S-1", "on": "2022-02-13", "case_no": "L2"})
        assert [e.case_no for e in second.history("S-1")[1:]] == ["L1"]  # type: ignore[attr-defined]


def test_the_same_ref_cannot_be_found_by_two_sessions(db_url: str) -> None:
    with two_sessions(db_url) as (first, second):
        record(first, SITE)
        with pytest.raises(DomainError, match="已存在"):
            record(second, {**SITE, "township": "八义镇", "unit": "八义自然资源所"})
        assert first.case("S-1").site.township == "西火镇"


def test_each_session_reads_the_others_writes(db_url: str) -> None:
    with two_sessions(db_url) as (first, second):
        first_model, second_model = ReadModel(first), ReadModel(second)
        record(first, SITE)  # the read model is shared: whoever reads next catches it up
        second_model.catch_up()
        assert second_model.stats()["total"]["found"] == 1
        record(second, {"cmd": "dismiss", "ref": "S-1", "on": "2022-02-11", "reason": "重复"})
        second_model.catch_up()
        first_model.catch_up()
        assert first_model.stats()["total"]["dismissed"] == 1
        first_model.close()
        second_model.close()
