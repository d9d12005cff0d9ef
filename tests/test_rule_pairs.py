"""Rules written twice, checked against each other: each test fails when either copy changes
alone. (The two copies exist for speed: the write side folds typed events, the read side folds
the stored JSON; the statistics round in integers, the values in Decimal; the alerts run as SQL
over the read model and as Python over one row of the problem list.)

Pure rules need one backend: these run on SQLite.
"""

import sqlite3
from collections.abc import Iterator
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_projections import scenarios

from domain import case as case_rules
from domain import events as e
from domain.campaign import DEFAULT_CAMPAIGN_FILE, load_config
from domain.case import Case
from domain.commands import SITE_FIELDS, parse_command
from domain.values import CENT, m2_to_mu
from exports import events as events_export
from projections import ledger
from projections.facts import all_facts
from projections.problems import alerts as row_alerts
from projections.problems import is_open
from projections.read import Reader
from projections.readmodel import ReadModel
from projections.stats import mu_hundredths
from service.demo import demo_commands
from service.ledger import LandLedger

CONFIG = load_config()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LandLedger]:
    app = LandLedger(str(tmp_path / "pairs.db"))
    yield app
    app.close()


def record(app: LandLedger, commands: list[dict[str, Any]]) -> None:
    app.record([parse_command(c) for c in commands], "tester")


# The case fold (domain/case.py) and the ledger fold (projections/ledger.py) ---------------


def assert_same_case(case: Case, row: ledger.Row) -> None:
    """What both folds know of a case: identity, version, state, flags, the site's facts with
    their amounts and dates."""
    typed = ledger.view(row).case
    assert (typed.id, typed.ref, typed.version, typed.found_on) == (
        case.id,
        case.ref,
        case.version,
        case.found_on,
    )
    assert row["state"] == case.state == typed.state
    assert {f: row[f] for f in ledger.CASE_FLAGS} == {
        f: getattr(case, f) for f in ledger.CASE_FLAGS
    }
    assert {f: getattr(typed.site, f) for f in SITE_FIELDS} == {
        f: getattr(case.site, f) for f in SITE_FIELDS
    }


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=scenarios())
def test_the_case_fold_and_the_ledger_fold_agree_after_every_event(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[dict[str, Any]]]
) -> None:
    app = LandLedger(str(tmp_path_factory.mktemp("fold") / "fold.db"))
    try:
        for batch in batches:
            record(app, batch)
        facts = {(f.case_id, f.version): f for f in all_facts(app)}
        cases: dict[UUID, Case] = {}
        rows: dict[str, ledger.Row] = {}
        for notification in app.notifications():
            event = app.mapper.to_domain_event(notification)
            if not isinstance(event, e.CaseEvent):
                continue
            case = cases[event.originator_id] = case_rules.mutate(
                cases.get(event.originator_id), event
            )
            key = event.originator_id.hex
            row = rows[key] = ledger.apply(rows.get(key), facts[(key, event.originator_version)])
            assert_same_case(case, row)
        assert len(cases) == len(rows) > 0
    finally:
        app.close()


# 亩 rounding: domain/values.py (Decimal) and projections/stats.py (integer hundredths) -------


@given(
    st.one_of(
        st.integers(0, 10**13),
        # ㎡ × 15 / 10000 lands exactly on half a hundredth of 亩 when hundredths ≡ 1000 mod 2000
        st.integers(0, 10**9).map(lambda k: 2000 * k + 1000),
        st.integers(0, 10**9).map(lambda k: 2000 * k + 999),
        st.integers(0, 10**9).map(lambda k: 2000 * k + 1001),
    )
)
@example(333333)  # 3333.33 ㎡ is 5.00 亩: the crime threshold's edge
@example(333332)
@example(3000)  # 0.045 亩: half-up 0.05, half-even 0.04
@example(0)
def test_mu_rounding_is_the_same_in_decimal_and_in_integers(m2_hundredths: int) -> None:
    assert Decimal(mu_hundredths(m2_hundredths)) / 100 == m2_to_mu(Decimal(m2_hundredths) / 100)


def test_the_rounding_pair_would_see_half_even() -> None:
    """The examples above hold a value where the two roundings part (so a change to either
    side's rounding mode cannot pass unseen)."""
    value = Decimal("30.00") * 15 / 10000
    assert value.quantize(CENT, rounding=ROUND_HALF_EVEN) != m2_to_mu(Decimal("30.00"))


# The alerts: SQL over the read model (projections/alerts.py) and Python per row
# (projections/problems.py) --------------------------------------------------------------


def sql_and_python_alerts(app: LandLedger, today: date) -> Iterator[tuple[str, set[str], set[str]]]:
    """For each alert both sides raise: the refs the SQL lists, and the open cases (the
    problem list's rows) the Python flags."""
    model = ReadModel(app)
    try:
        model.catch_up()
        campaign = app.campaign()
        config = campaign.config
        sql = {a.kind: set(a.first) for a in model.alerts(today, campaign, listed=10**6)}
        rows = [r for r in Reader(app, model).ledger() if is_open(r)]
        python = {r.case.ref: row_alerts(r, today, config, dict(campaign.deadlines)) for r in rows}
        kinds = {
            "overdue": "整改逾期",
            "crime": "达标未移送公安",
            "decision": f"立案超{config.alerts.decision_days}日未处罚",
        }
        for phase in config.phases:
            if phase.checks == "rectified":
                kinds[f"phase:{phase.key}"] = phase.name.partition("：")[0] + "期限"
        open_refs = set(python)
        for kind, text in kinds.items():
            flagged = {ref for ref, found in python.items() if any(text in a for a in found)}
            # The SQL's crime alert also counts closed-out cases, which the problem list
            # leaves out; every other alert is about open cases alone.
            listed = sql.get(kind, set())
            yield kind, listed if kind != "crime" else listed & open_refs, flagged
    finally:
        model.close()


@pytest.mark.parametrize(
    "today", [date(2022, 2, 20), date(2022, 3, 15), date(2022, 4, 10), date(2026, 1, 1)]
)
def test_the_sql_alerts_and_the_problem_lists_alerts_flag_the_same_cases(
    store: LandLedger, today: date
) -> None:
    record(store, demo_commands(CONFIG, 300, seed=3))
    seen = 0
    for kind, sql, python in sql_and_python_alerts(store, today):
        assert sql == python, kind
        seen += len(sql)
    assert seen  # the scenario raises some alerts at every date


# Phases: what each checks comes from the data file, not from its key ---------------------


def district_file(tmp_path: Path) -> Path:
    """Another district's file: the same phases under other keys."""
    text = DEFAULT_CAMPAIGN_FILE.read_text(encoding="utf-8")
    for old, new in (("contacts", "lianluo"), ("survey", "mopai"), ("rectify", "zhengzhi")):
        text = text.replace(f'key = "{old}"', f'key = "{new}"')
    path = tmp_path / "other-district.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_district_file_with_other_phase_keys_gets_its_phase_alerts(tmp_path: Path) -> None:
    app = LandLedger(str(tmp_path / "other.db"), campaign_file=district_file(tmp_path))
    try:
        record(app, demo_commands(app.campaign().config, 60, seed=4))
        today = date(2026, 1, 1)
        model = ReadModel(app)
        model.catch_up()
        alerts = {a.kind: a for a in model.alerts(today, app.campaign(), listed=10**6)}
        model.close()
        assert alerts["phase:lianluo"].count == len(CONFIG.units)  # no contact set
        found_only = [r.case.ref for r in Reader(app).ledger() if r.state == "已发现"]
        assert sorted(alerts["phase:mopai"].first) == sorted(found_only)
        assert alerts["phase:zhengzhi"].count > 0
        assert not any(kind.startswith("phase:report") for kind in alerts)  # checks = "none"
        for _, sql, python in sql_and_python_alerts(app, today):
            assert sql == python
    finally:
        app.close()


def test_a_stored_campaign_of_version_1_loads_with_the_checks_its_keys_had(
    tmp_path: Path,
) -> None:
    """A stored event is forever: CampaignDefined version 1 had no `checks`; it is upcast."""
    path = tmp_path / "old.db"
    first = LandLedger(str(path))
    record(first, [{"cmd": "set_contact", "unit": "韩店自然资源所", "name": "王明"}])
    first.close()
    with sqlite3.connect(path) as conn:
        (topic, state) = conn.execute(
            "SELECT topic, state FROM stored_events WHERE topic = ?", (e.CampaignDefined.TOPIC,)
        ).fetchone()
        data = orjson.loads(state)
        assert data.pop("class_version") == 2
        for phase in data["config"]["phases"]:
            del phase["checks"]
        conn.execute(
            "UPDATE stored_events SET state = ? WHERE topic = ?", (orjson.dumps(data), topic)
        )
    app = LandLedger(str(path))
    try:
        checks = {p.key: p.checks for p in app.campaign().config.phases}
        assert checks == {
            "contacts": "contacts",
            "survey": "found",
            "report": "none",
            "rectify": "rectified",
        }
    finally:
        app.close()


# The as-of rule: the events export calls the ledger's ------------------------------------


def test_the_events_export_keeps_what_the_ledger_replay_keeps(
    store: LandLedger, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every cutoff of the export is the ledger's `included`: the export's case events at a
    cutoff are exactly those the ledger's replay folds, and replacing the ledger's rule
    changes the export."""
    from exports.stamp import stamp

    record(store, demo_commands(CONFIG, 60, seed=9))
    record(
        store,
        [
            {
                "cmd": "correct_site",
                "ref": "SD-2022-0003",
                "on": "2022-04-01",
                "reason": "复测",
                "area_m2": "999.00",
            }
        ],
    )
    for as_of in (date(2022, 2, 1), date(2022, 3, 1), None):
        out = tmp_path / "events.jsonl"
        mark = stamp(store, as_of=as_of, known_at=None)
        events_export.write_events(out, store, stamp=mark, unmasked=True)
        exported = [orjson.loads(line) for line in out.read_bytes().splitlines()[1:]]
        kept = {(x["aggregate"], x["version"]) for x in exported if x.get("ref")}
        folded = set()
        rows: dict[str, ledger.Row] = {}
        for fact in all_facts(store):
            cutoff = as_of.isoformat() if as_of else None
            if ledger.included(fact, rows.get(fact.case_id), cutoff, None):
                rows[fact.case_id] = ledger.apply(rows.get(fact.case_id), fact)
                folded.add((str(UUID(fact.case_id)), fact.version))
        assert kept == folded and kept
    # The export has no rule of its own: with the ledger's replaced, it keeps no case event.
    monkeypatch.setattr(ledger, "included", lambda *args: False)
    events_export.write_events(out, store, stamp=stamp(store, as_of=None, known_at=None))
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()[1:]]
    assert lines and not any(line.get("ref") for line in lines)
