"""The read model: incremental == rebuild == naive replay, at every cutoff, on both backends."""

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.campaign import load_config
from domain.commands import parse_command
from domain.values import china_today
from projections import rebuild
from projections.facts import all_facts
from projections.ledger import Fact, replay, us_of
from projections.readmodel import ReadModel
from projections.rebuild import case_chunks
from projections.stats import statistics
from service.ledger import LandLedger

CONFIG = load_config()
DAY0 = date(2022, 1, 10)
BY = ("township", "unit", "violation_type", "month")


@contextmanager
def opened(url: str) -> Iterator[tuple[LandLedger, ReadModel]]:
    app = LandLedger(url)
    model = ReadModel(app)
    try:
        yield app, model
    finally:
        model.close()
        app.close()


def record(app: LandLedger, commands: list[dict[str, Any]]) -> None:
    app.record([parse_command(c) for c in commands], "tester")


def naive_stats(
    facts: list[Fact], as_of: date | None, known_at: datetime | None
) -> dict[str, dict[str, Any]]:
    """The statistics by every grouping at a cutoff, from a replay of the log in memory."""
    rows = replay(
        facts,
        as_of=as_of.isoformat() if as_of else None,
        known_us=us_of(known_at) if known_at else None,
    ).values()
    cutoff = as_of or china_today()
    return {
        by: statistics(rows, by=by, cutoff=cutoff, config=CONFIG, as_of=as_of, known_at=known_at)
        for by in BY
    }


def assert_model_matches_replay(app: LandLedger, model: ReadModel) -> None:
    facts = list(all_facts(app))
    naive = sorted(replay(facts).values(), key=lambda r: r["id"])
    assert sorted(model.ledger_rows(), key=lambda r: r["id"]) == naive
    moments = sorted({f.recorded_us for f in facts})
    known = [None] + [
        datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us + delta)
        for us in moments
        for delta in (-1, 0)
    ]
    days = [None, DAY0, DAY0 + timedelta(days=20), DAY0 + timedelta(days=45), date(2022, 6, 1)]
    for as_of in days:
        for known_at in known:
            expected = naive_stats(facts, as_of, known_at)  # the log read once, folded once
            for by in BY:
                assert model.stats(by=by, as_of=as_of, known_at=known_at) == expected[by]


@st.composite
def scenarios(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """Valid command sequences in random batches: stops and referrals entered late (dated
    before steps already recorded), corrections, dismissals and reopenings."""
    cases: dict[str, dict[str, Any]] = {}
    commands: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 18))):
        if not cases or draw(st.integers(0, 3)) == 0:
            ref = f"P-{len(cases) + 1}"
            found = DAY0 + timedelta(days=draw(st.integers(0, 40)))
            area = draw(st.integers(1, 2_000_000))
            cultivated = draw(st.integers(0, area))
            basic = draw(st.sampled_from([0, 333333, 333332, cultivated // 2]))
            basic = min(basic, cultivated)
            township = draw(st.sampled_from(CONFIG.townships))
            cases[ref] = {"found": found, "filed": False, "decided": False, "done": False}
            cases[ref].update(closed=False, dismissed=False, area=area)
            commands.append(
                {
                    "cmd": "find_site",
                    "ref": ref,
                    "on": found.isoformat(),
                    "source": "巡查",
                    "township": township,
                    "unit": draw(st.sampled_from(CONFIG.units)),
                    "violation_types": draw(
                        st.lists(st.sampled_from(["占用耕地", "无规划许可", "其他"]), min_size=1)
                    ),
                    "area_m2": f"{area / 100:.2f}",
                    "cultivated_m2": f"{cultivated / 100:.2f}",
                    "basic_farmland_m2": f"{basic / 100:.2f}",
                    "major_hazard": draw(st.booleans()),
                }
            )
            continue
        ref = draw(st.sampled_from(sorted(cases)))
        case = cases[ref]
        on = (case["found"] + timedelta(days=draw(st.integers(0, 60)))).isoformat()
        if case["closed"] or case["dismissed"]:
            options = ["reopen", "correct_site", "flag"]
        else:
            options = ["stop", "refer", "flag", "correct_site", "order_rectification"]
            options += ["record_rectification", "complete_rectification", "dismiss"]
            options += ["decide_penalty"] if case["filed"] and not case["decided"] else []
            options += ["file_case"] if not case["filed"] else []
            options += ["close_out"] if case["done"] else []
        name = draw(st.sampled_from(options))
        command: dict[str, Any] = {"cmd": name, "ref": ref, "on": on}
        if name == "reopen":
            command["reason"] = "复核"
            case.update(closed=False, dismissed=False, done=False)
        elif name == "correct_site":
            command["reason"] = "更正"
            command["township"] = draw(st.sampled_from(CONFIG.townships))
            case["area"] += 100
            command["area_m2"] = f"{case['area'] / 100:.2f}"
        elif name == "flag":
            command["kind"] = "典型案件"
        elif name == "refer":
            command["agency"] = draw(st.sampled_from(["公安", "纪检监察", "住建"]))
            command["persons"] = draw(st.integers(0, 3))
        elif name == "order_rectification":
            command["measures"] = ["拆除复耕"]
            command["due_on"] = draw(st.sampled_from(["2022-02-01", "2022-03-01", "2022-05-01"]))
        elif name == "record_rectification":
            command["restored_m2"] = str(draw(st.integers(0, 500)))
            command["fine_paid_yuan"] = "100.50"
        elif name == "complete_rectification":
            case["done"] = True
        elif name == "dismiss":
            command["reason"] = "不属实"
            case["dismissed"] = True
        elif name == "file_case":
            command["case_no"] = f"立{ref}"
            case["filed"] = True
        elif name == "decide_penalty":
            command.update(decision_no=f"罚{ref}", fine_yuan="1000.10")
            case["decided"] = True
        elif name == "close_out":
            case["closed"] = True
        commands.append(command)
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(commands) - 1)), max_size=3)))
    bounds = [0, *cuts, len(commands)]
    return [commands[a:b] for a, b in itertools.pairwise(bounds) if commands[a:b]]


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=scenarios(), catch_up_between=st.lists(st.booleans(), min_size=4, max_size=4))
def test_incremental_equals_rebuild_equals_replay(
    new_store: Callable[[], str], batches: list[list[dict[str, Any]]], catch_up_between: list[bool]
) -> None:
    *earlier, last = batches
    with opened(new_store()) as (app, model):
        for batch, catch_up in zip(earlier, catch_up_between, strict=False):
            record(app, batch)
            if catch_up:
                model.catch_up()
        model.catch_up()
        assert_model_matches_replay(app, model)
        model.rebuild()
        assert_model_matches_replay(app, model)
        # A rebuilt model goes on following the log (late entries and corrections included).
        record(app, last)
        model.catch_up()
        assert_model_matches_replay(app, model)
        model.rebuild()
        assert_model_matches_replay(app, model)


FOUND = {
    "cmd": "find_site",
    "ref": "A-1",
    "on": "2022-02-10",
    "source": "巡查",
    "township": "苏店镇",
    "unit": "苏店自然资源所",
    "violation_types": ["占用耕地"],
    "area_m2": "5000",
    "cultivated_m2": "4000",
}


def test_a_stop_entered_late_counts_at_its_own_date_not_the_latest_before(db_url: str) -> None:
    with opened(db_url) as (app, model):
        record(app, [FOUND, {"cmd": "file_case", "ref": "A-1", "on": "2022-02-20", "case_no": "L"}])
        record(app, [{"cmd": "stop", "ref": "A-1", "on": "2022-02-12", "order_no": "停1"}])
        model.catch_up()
        at_15th = model.stats(as_of=date(2022, 2, 15))["total"]
        assert (at_15th["stopped"], at_15th["filed"]) == (1, 0)
        at_20th = model.stats(as_of=date(2022, 2, 20))["total"]
        assert (at_20th["stopped"], at_20th["filed"]) == (1, 1)
        assert model.stats(as_of=date(2022, 2, 11))["total"]["stopped"] == 0


def test_known_at_between_two_batches_gives_the_first_batchs_statistics(db_url: str) -> None:
    with opened(db_url) as (app, model):
        record(app, [FOUND, {"cmd": "stop", "ref": "A-1", "on": "2022-02-11"}])
        model.catch_up()
        first = {by: model.stats(by=by) for by in BY}
        between = datetime.now(UTC)
        second = {**FOUND, "ref": "A-2", "township": "韩店街道", "unit": "韩店自然资源所"}
        record(
            app, [second, {"cmd": "dismiss", "ref": "A-1", "on": "2022-02-12", "reason": "重复"}]
        )
        model.catch_up()
        assert model.stats()["total"]["found"] == 2
        for by in BY:
            replayed = model.stats(by=by, known_at=between)
            assert replayed["known_at"] == between.isoformat()
            assert {**replayed, "known_at": None} == first[by]


def test_a_correction_applies_at_every_date_but_not_before_it_was_known(db_url: str) -> None:
    with opened(db_url) as (app, model):
        record(app, [FOUND])
        before = datetime.now(UTC)
        fix = {"cmd": "correct_site", "ref": "A-1", "on": "2022-03-05", "reason": "实测"}
        record(app, [{**fix, "township": "荫城镇", "unit": "荫城自然资源所"}])
        model.catch_up()
        groups = {g["key"]: g["found"] for g in model.stats(as_of=date(2022, 2, 15))["groups"]}
        assert (groups["荫城镇"], groups["苏店镇"]) == (1, 0)
        then = {g["key"]: g["found"] for g in model.stats(known_at=before)["groups"]}
        assert (then["荫城镇"], then["苏店镇"]) == (0, 1)


def test_rebuild_leaves_every_statistics_answer_unchanged(db_url: str) -> None:
    with opened(db_url) as (app, model):
        from service.demo import demo_commands

        record(app, demo_commands(CONFIG, 60, seed=3))
        model.catch_up()
        cutoffs = [None, date(2022, 2, 1), date(2022, 2, 28), date(2022, 3, 31)]
        before = [model.stats(by=by, as_of=d) for by in BY for d in cutoffs]
        rows = list(model.ledger_rows())
        model.rebuild()
        assert [model.stats(by=by, as_of=d) for by in BY for d in cutoffs] == before
        assert list(model.ledger_rows()) == rows


def test_a_rebuild_reads_each_part_case_by_case_and_never_splits_a_case(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.demo import demo_commands

    monkeypatch.setattr(rebuild, "PAGE", 7)  # cases of up to ~9 events straddle many pages
    with opened(db_url) as (app, _):
        record(app, demo_commands(CONFIG, 40, seed=5))
        total = app.recorder.max_notification_id() or 0
        record(app, [{**FOUND, "ref": f"L-{n}"} for n in range(3)])  # after the position
        in_log = [f for f in all_facts(app) if f.position <= total]
        whole = sorted(in_log, key=lambda f: (f.case_id, f.version))
        for parts in (1, 2):
            read = []
            for part in range(parts):
                chunks = list(case_chunks(app, total, part, parts))
                ids = [{f.case_id for f in chunk} for chunk in chunks]
                assert all(a.isdisjoint(b) for a, b in itertools.combinations(ids, 2))
                read += [f for chunk in chunks for f in chunk]
            assert sorted(read, key=lambda f: (f.case_id, f.version)) == whole
            assert len(read) == len(whole)


def test_alerts_agree_with_the_statistics_and_follow_the_campaign(db_url: str) -> None:
    with opened(db_url) as (app, model):
        from service.demo import demo_commands

        record(app, demo_commands(CONFIG, 80, seed=11))
        filed_only = {**FOUND, "ref": "F-1"}
        record(
            app,
            [filed_only, {"cmd": "file_case", "ref": "F-1", "on": "2022-02-11", "case_no": "F"}],
        )
        model.catch_up()
        today = china_today()
        alerts = {a.kind: a for a in model.alerts(today, app.campaign(), listed=500)}
        total = model.stats()["total"]
        assert alerts["overdue"].count == total["overdue"]
        assert alerts["crime"].count == total["over_crime_threshold_unreferred"]
        assert "F-1" in alerts["decision"].first  # filed in 2022, never decided
        assert alerts["phase:contacts"].count == len(CONFIG.units)
        found_only = [r["ref"] for r in model.ledger_rows() if r["state"] == "已发现"]
        assert sorted(alerts["phase:survey"].first) == sorted(found_only)

        record(app, [{"cmd": "set_contact", "unit": "韩店自然资源所", "name": "王明"}])
        record(
            app,
            [
                {
                    "cmd": "decide_penalty",
                    "ref": "F-1",
                    "on": "2022-03-01",
                    "decision_no": "D",
                    "fine_yuan": "1",
                }
            ],
        )
        model.catch_up()
        alerts = {a.kind: a for a in model.alerts(today, app.campaign(), listed=500)}
        assert "韩店自然资源所" not in alerts["phase:contacts"].first
        assert alerts["phase:contacts"].count == len(CONFIG.units) - 1
        assert "F-1" not in alerts["decision"].first
        # Before a phase's deadline there is no alert for it.
        early = {a.kind for a in model.alerts(date(2022, 2, 1), app.campaign())}
        assert "phase:contacts" in early and "phase:rectify" not in early


def _damage(db_url: str, position: int) -> None:
    """Overwrite one stored event's bytes, as a disk fault or a hand edit would."""
    if db_url.startswith("postgresql://"):
        import psycopg

        url, schema = db_url.split("?schema=")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                f'UPDATE "{schema}".landledger_events SET state = %s WHERE notification_id = %s',
                (b"{", position),
            )
        return
    import sqlite3

    with sqlite3.connect(db_url) as conn:
        conn.execute("UPDATE stored_events SET state = X'7B' WHERE rowid = ?", (position,))


@pytest.mark.parametrize("part", [0, 1])
def test_a_damaged_store_is_named_and_the_read_model_kept(
    db_url: str, part: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whichever process of a rebuild folds the damaged event (cases are split by id)."""
    from tui.cli import main

    sites: list[dict[str, Any]] = [{**FOUND, "ref": f"A-{n}"} for n in range(12)]
    with opened(db_url) as (app, model):
        record(app, sites + [{"cmd": "stop", "ref": s["ref"], "on": "2022-02-11"} for s in sites])
        model.catch_up()
        before = model.stats()
        ids = app.ledger_recorder.case_ids([s["ref"] for s in sites])
    # The stop of the first case folded by that part (1 is the campaign, then 12 sites).
    n = next(n for n, s in enumerate(sites) if int(ids[s["ref"]].hex[-1], 16) % 2 == part)
    _damage(db_url, 14 + n)
    assert main(["--db", db_url, "rebuild"]) == 1
    err = capsys.readouterr().err
    assert "拒绝重建" in err and f"第 {14 + n} 个事件（位置 {14 + n}）" in err  # by the chain
    with opened(db_url) as (app, model):
        assert model.stats() == before


def test_a_refill_from_given_facts_equals_a_rebuild(db_url: str) -> None:
    """The public fold the benchmark's baseline uses (ReadModel.refill) is the rebuild's."""
    from service.demo import demo_commands

    with opened(db_url) as (app, model):
        record(app, demo_commands(CONFIG, 40, seed=8))
        model.rebuild()
        rows, figures = list(model.ledger_rows()), [model.stats(by=by) for by in BY]
        as_of = [model.stats(by=by, as_of=DAY0 + timedelta(days=30)) for by in BY]
        model.refill(all_facts(app), app.recorder.max_notification_id() or 0)
        assert sorted(model.ledger_rows(), key=lambda r: r["id"]) == sorted(
            rows, key=lambda r: r["id"]
        )
        assert [model.stats(by=by) for by in BY] == figures
        assert [model.stats(by=by, as_of=DAY0 + timedelta(days=30)) for by in BY] == as_of
        assert model.catch_up() == 0


def test_a_read_model_of_an_older_layout_is_refilled_on_first_use(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an upgrade that changes the read model's layout the first session refills it
    (through a rebuild once the log is long) and answers as before."""
    from projections.database import SCHEMA
    from service import session
    from service.demo import demo_commands

    with opened(db_url) as (app, model):
        record(app, demo_commands(CONFIG, 40, seed=5))
        model.catch_up()
        before = model.stats(by="township", as_of=date(2022, 3, 1))
        rows = list(model.ledger_rows())
        model.db.conn.execute(f"UPDATE rm_tracking SET schema = {SCHEMA - 1}")
        model.db.conn.commit()
    monkeypatch.setattr(session, "REFILL_BY_REBUILD", 10)  # this log counts as long
    upgraded = session.Session(db_url, "staff")
    try:
        assert upgraded.stats(by="township", as_of=date(2022, 3, 1)) == before
        assert list(upgraded.model.ledger_rows()) == rows
        assert upgraded.model.position() == upgraded.last_position()
    finally:
        upgraded.close()
