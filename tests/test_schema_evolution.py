"""A stored event is forever (issue 15): tests/fixtures/v1-every-event.db, made once by
tools/make_v1_fixture.py and never made again, holds every event class as version 1 of the schema
wrote it (CampaignDefined in its version 1, without phase `checks`). Today's code must open it,
fold it and verify it, with the figures it held when it was made."""

import inspect
import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import cli, measures

from domain import events as e
from service.ledger import LandLedger

FIXTURE = Path(__file__).parent / "fixtures" / "v1-every-event.db"
FINGERPRINT = "18:8ef19fce5687b72132552f3f25caf18aba645990697c00df6f15d297741ab931"
ACTOR = "admin-01"  # the fixture registers staff: only they may read unmasked


def defined_event_classes() -> set[type[e.Event]]:
    """Every concrete event class written in domain/events.py, whether or not it is listed in
    EVENT_CLASSES: a new class the fixture lacks fails the coverage test below."""
    return {
        cls
        for _, cls in inspect.getmembers(e, inspect.isclass)
        if issubclass(cls, e.Event) and "TOPIC" in vars(cls)
    }


def stored_rows() -> list[tuple[str, dict[str, Any]]]:
    with closing(sqlite3.connect(f"{FIXTURE.as_uri()}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT topic, state FROM stored_events ORDER BY rowid").fetchall()
    return [(topic, orjson.loads(state)) for topic, state in rows]


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A copy of the fixture: opening a store may write (its read model), the fixture never."""
    copy = tmp_path / "v1.db"
    shutil.copyfile(FIXTURE, copy)
    return str(copy)


def test_the_fixture_holds_every_event_class_in_version_1() -> None:
    rows = stored_rows()
    topics = {topic for topic, _ in rows}
    missing = {cls.__name__ for cls in defined_event_classes() if cls.TOPIC not in topics}
    # A new event class: make a fixture of today's version beside this one (a copy of the tool
    # writing another file); this one is never remade.
    assert not missing, f"event classes the v1 fixture does not hold: {sorted(missing)}"
    assert set(e.EVENT_CLASSES) == defined_event_classes()
    assert all("class_version" not in state for _, state in rows)  # version 1, as written then
    (campaign,) = [state for topic, state in rows if topic == e.CampaignDefined.TOPIC]
    assert [sorted(phase) for phase in campaign["config"]["phases"]] == [
        ["due_on", "key", "name"]
    ] * 4


def test_every_stored_event_reads_as_its_class_and_the_campaign_is_upcast(store: str) -> None:
    app = LandLedger(store)
    try:
        read = list(app.all_events())
        assert {type(event) for event in read} == defined_event_classes()
        checks = {phase.key: phase.checks for phase in app.campaign().config.phases}
        assert checks == {
            "contacts": "contacts",
            "survey": "found",
            "report": "none",
            "rectify": "rectified",
        }
    finally:
        app.close()


TOTAL = measures(
    found=2,
    dismissed=1,
    violations=1,
    area_m2="2400.00",
    cultivated_m2="1500.00",
    stopped=1,
    filed=1,
    decided=1,
    fines_decided_yuan="48000.00",
    fines_paid_yuan="48000.00",
    demolished_m2="2400.00",
    restored_m2="1500.00",
    referred_police=1,
    referred_police_persons=2,
    open=1,
    overdue=1,  # ordered to 2022-03-20, reopened since
)
TOTAL_AT_END_OF_FEBRUARY = {
    **TOTAL,
    "fines_paid_yuan": "0.00",
    "demolished_m2": "0.00",
    "restored_m2": "0.00",
    "overdue": 0,
}
HISTORY = [
    "发现",
    "更正",
    "制止",
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


def stats_of(store: str, *options: str) -> dict[str, Any]:
    code, out, err = cli("--db", store, "--actor", ACTOR, "stats", "--json", *options)
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def test_the_fixture_folds_and_verifies_with_the_figures_it_was_made_with(
    store: str, tmp_path: Path
) -> None:
    for _ in range(2):  # folded from nothing as the read model catches up, then rebuilt
        assert stats_of(store)["total"] == TOTAL
        assert stats_of(store, "--as-of", "2022-02-28")["total"] == TOTAL_AT_END_OF_FEBRUARY
        assert stats_of(store)["fingerprint"] == FINGERPRINT  # the log as stored, untouched
        code, _, err = cli("--db", store, "--actor", ACTOR, "rebuild")
        assert code == 0, err
    code, out, err = cli("--db", store, "--actor", ACTOR, "history", "V1-0001", "--unmasked")
    assert code == 0, err
    assert [line.split("  ")[3] for line in out.splitlines()] == HISTORY
    assert "当事人=张三" in out and "证件号码=110101199001011234" in out
    code, out, err = cli("--db", store, "--actor", ACTOR, "alerts", "--json")
    assert code == 0, err
    counts = {alert["kind"]: alert["count"] for alert in json.loads(out)}
    # The phases' alerts count what each phase's upcast `checks` says; the deadline moved.
    assert counts == {
        "overdue": 1,
        "crime": 0,
        "decision": 0,
        "phase:contacts": 12,
        "phase:survey": 0,
        "phase:rectify": 1,
    }
    assert "2022-04-15 到期" in json.loads(out)[-1]["title"]
    code, out, err = cli("--db", store, "--actor", ACTOR, "verify")
    assert code == 0 and "核验通过：18 个事件" in out and FINGERPRINT in out, err
    for kind, suffix in (("ledger", "xlsx"), ("events", "jsonl")):
        target = tmp_path / f"{kind}.{suffix}"
        code, _, err = cli("--db", store, "--actor", ACTOR, "export", kind, "--out", str(target))
        assert code == 0, err
