"""Issue 2's "Done when": a seeded scenario of a few hundred cases, recorded through
`landledger record --file`, gives `stats --json` equal, number for number, to an independent
computation written here from DESIGN's definitions alone.

The computation below imports nothing of projections/ or domain/: it folds its own list of
generated commands (DESIGN's JSON form) in the order they were recorded.
"""

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import COUNT_MEASURES, TOWNSHIPS, UNITS, VIOLATION_TYPES, cli, jsonl, stats

Command = dict[str, Any]

CENT = Decimal("0.01")
ZERO = Decimal(0)
SEED = 20220228
CASES = 300
LAST_DAY = date(2022, 6, 30)


# The independent computation --------------------------------------------------------------


def mu_to_m2(mu: Decimal) -> Decimal:
    """DESIGN: ㎡ = 亩 × 10000 / 15, rounded half-up to 0.01 ㎡."""
    return (mu * 10000 / 15).quantize(CENT, rounding=ROUND_HALF_UP)


def m2_to_mu(m2: Decimal) -> Decimal:
    """亩, rounded half-up to two places."""
    return (m2 * 15 / 10000).quantize(CENT, rounding=ROUND_HALF_UP)


AREAS = ("area_m2", "cultivated_m2", "basic_farmland_m2", "eco_redline_m2")
SITE_KEYS = ("township", "unit", "violation_types", "major_hazard", *AREAS)


def site_values(command: Command) -> dict[str, Any]:
    """The site fields a find_site or correct_site gives, areas in ㎡ as Decimal."""
    values: dict[str, Any] = {}
    for key, value in command.items():
        if key.endswith("_mu"):
            values[key[:-3] + "_m2"] = mu_to_m2(Decimal(str(value)))
        elif key in AREAS:
            values[key] = Decimal(str(value))
        elif key in SITE_KEYS:
            values[key] = value
    return values


@dataclass
class Model:
    found_on: date
    site: dict[str, Any]
    stopped: bool = False
    dismissed: bool = False
    filed: bool = False
    decided: bool = False
    rectifying: bool = False
    rectified: bool = False
    closed_out: bool = False
    fines_decided: Decimal = ZERO
    fines_paid: Decimal = ZERO
    demolished: Decimal = ZERO
    restored: Decimal = ZERO
    permits: int = 0
    referrals: list[tuple[str, int]] = field(default_factory=list)
    due_on: date | None = None

    @property
    def state(self) -> str:
        """DESIGN's order: closed out, dismissed, complete, ordered or recorded, decided, filed,
        stopped, else found."""
        if self.closed_out:
            return "已销号"
        if self.dismissed:
            return "已排除"
        if self.rectified:
            return "已整改"
        if self.rectifying:
            return "整改中"
        if self.decided:
            return "已处罚"
        if self.filed:
            return "已立案"
        if self.stopped:
            return "已制止"
        return "已发现"


def amount(command: Command, key: str) -> Decimal:
    return Decimal(str(command.get(key, 0)))


def fold(commands: Iterable[Command], as_of: date | None) -> dict[str, Model]:
    """Every case at the cutoff: events dated after it are left out, except corrections, which
    fix what was known and apply at every business date."""
    cases: dict[str, Model] = {}
    for command in commands:
        on = date.fromisoformat(command["on"])
        name, ref = command["cmd"], command["ref"]
        if name == "find_site":
            if as_of is None or on <= as_of:
                defaults = {"cultivated_m2": ZERO, "basic_farmland_m2": ZERO}
                site = {"eco_redline_m2": ZERO, "major_hazard": False, **defaults}
                cases[ref] = Model(found_on=on, site={**site, **site_values(command)})
            continue
        case = cases.get(ref)
        if case is None:
            continue
        if name == "correct_site":
            case.site.update(site_values(command))
            continue
        if as_of is not None and on > as_of:
            continue
        if name == "stop":
            case.stopped = True
        elif name == "dismiss":
            case.dismissed = True
        elif name == "file_case":
            case.filed = True
        elif name == "decide_penalty":
            case.decided = True
            case.fines_decided += amount(command, "fine_yuan") + amount(
                command, "confiscated_income_yuan"
            )
        elif name == "refer":
            case.referrals.append((command["agency"], command.get("persons", 0)))
        elif name == "order_rectification":
            case.rectifying = True
            case.due_on = date.fromisoformat(command["due_on"])
        elif name == "record_rectification":
            case.rectifying = True
            case.fines_paid += amount(command, "fine_paid_yuan")
            case.demolished += amount(command, "demolished_m2")
            if "restored_mu" in command:
                case.restored += mu_to_m2(Decimal(str(command["restored_mu"])))
            else:
                case.restored += amount(command, "restored_m2")
            case.permits += 1 if command.get("permit_doc_no") else 0
        elif name == "complete_rectification":
            case.rectified = True
        elif name == "close_out":
            case.closed_out = True
        elif name == "reopen":
            case.closed_out = case.dismissed = case.rectified = False
    return cases


def contribution(case: Model, cutoff: date) -> dict[str, Any]:
    """One case's part in every measure, straight from DESIGN's list."""
    if case.state == "已排除":
        return {"found": 1, "dismissed": 1}
    site = case.site
    agencies = {agency for agency, _ in case.referrals}
    rectified = case.state in ("已整改", "已销号")
    basic, cultivated = site["basic_farmland_m2"], site["cultivated_m2"]
    over = m2_to_mu(basic) >= 5 or m2_to_mu(cultivated - basic) >= 10
    return {
        "found": 1,
        "violations": 1,
        "area_m2": site["area_m2"],
        "cultivated_m2": cultivated,
        "basic_farmland_m2": basic,
        "eco_redline_m2": site["eco_redline_m2"],
        "major_hazards": int(site["major_hazard"]),
        "major_hazards_rectified": int(site["major_hazard"] and rectified),
        "stopped": int(case.stopped),
        "filed": int(case.filed),
        "decided": int(case.decided),
        "fines_decided_yuan": case.fines_decided,
        "fines_paid_yuan": case.fines_paid,
        "demolished_m2": case.demolished,
        "restored_m2": case.restored,
        "referred_police": int("公安" in agencies),
        "referred_police_persons": sum(p for a, p in case.referrals if a == "公安"),
        "referred_discipline": int("纪检监察" in agencies),
        "referred_discipline_persons": sum(p for a, p in case.referrals if a == "纪检监察"),
        "referred_other": int(bool(agencies - {"公安", "纪检监察"})),
        "permits": int(case.permits > 0),
        "rectified": int(rectified),
        "closed_out": int(case.state == "已销号"),
        "overdue": int(case.due_on is not None and case.due_on < cutoff and not rectified),
        "over_crime_threshold_unreferred": int(over and "公安" not in agencies),
    }


COUNTS = tuple(m for m in COUNT_MEASURES if m != "open")  # open is derived below
SUMS = (
    "area_m2",
    "cultivated_m2",
    "basic_farmland_m2",
    "eco_redline_m2",
    "fines_decided_yuan",
    "fines_paid_yuan",
    "demolished_m2",
    "restored_m2",
)


def measures(parts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {name: sum(p.get(name, 0) for p in parts) for name in COUNTS}
    for name in SUMS:
        out[name] = str(sum((p.get(name, ZERO) for p in parts), ZERO).quantize(CENT, ROUND_HALF_UP))
    out["open"] = out["violations"] - out["closed_out"]
    rate = Decimal(out["rectified"]) / out["violations"] if out["violations"] else ZERO
    out["rectification_rate"] = str(rate.quantize(Decimal("0.0001"), ROUND_HALF_UP))
    return out


def months(first: date, last: date) -> list[str]:
    keys, (year, month) = [], (first.year, first.month)
    while (year, month) <= (last.year, last.month):
        keys.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return keys


def expected_stats(
    commands: list[Command], by: str, as_of: date | None, today: date
) -> dict[str, Any]:
    cases = fold(commands, as_of)
    cutoff = as_of or today
    parts = {ref: contribution(case, cutoff) for ref, case in cases.items()}

    def keys_of(case: Model) -> list[str]:
        if by == "township":
            return [case.site["township"]]
        if by == "unit":
            return [case.site["unit"]]
        if by == "violation_type":
            return list(dict.fromkeys(case.site["violation_types"]))
        return [case.found_on.strftime("%Y-%m")]

    if by == "township":
        keys = list(TOWNSHIPS)
    elif by == "unit":
        keys = list(UNITS)
    elif by == "violation_type":
        keys = list(VIOLATION_TYPES)
    else:
        found = [case.found_on for case in cases.values()]
        keys = months(min(found), max(found)) if found else []
    members: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    for ref, case in cases.items():
        for key in keys_of(case):
            members[key].append(parts[ref])
    return {
        "as_of": as_of.isoformat() if as_of else None,
        "known_at": None,
        "by": by,
        "groups": [{"key": key, **measures(members[key])} for key in keys],
        "total": measures(list(parts.values())),
    }


# The scenario -----------------------------------------------------------------------------


def money(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low * 100, high * 100)) / 100


def written(rng: random.Random, value: Decimal) -> Any:
    """Money and areas as DESIGN allows: decimal strings, or JSON numbers."""
    return value if rng.random() < 0.3 else str(value)


def areas(rng: random.Random) -> dict[str, Any]:
    """Consistent areas; some near or over the crime thresholds, some given in 亩."""
    shape = rng.random()
    if shape < 0.15:  # around the basic-farmland threshold (3330.00 ㎡ is 5.00 亩)
        basic = rng.choice(
            [Decimal("3329.99"), Decimal("3330.00"), Decimal("3333.33"), money(rng, 3300, 9000)]
        )
        cultivated = basic + money(rng, 0, 3000)
    elif shape < 0.25:  # around the other-cultivated threshold (6663.34 ㎡ is 10.00 亩)
        basic = money(rng, 0, 3000)
        cultivated = basic + rng.choice(
            [Decimal("6663.33"), Decimal("6663.34"), money(rng, 6000, 9000)]
        )
    else:
        cultivated = money(rng, 0, 3000) if rng.random() < 0.7 else ZERO
        basic = min(cultivated, money(rng, 0, 1500)) if rng.random() < 0.4 else ZERO
    area = cultivated + money(rng, 0, 4000)
    eco = min(area, money(rng, 0, 800)) if rng.random() < 0.15 else ZERO
    fields: dict[str, Any] = {"area_m2": written(rng, area)}
    if cultivated:
        fields["cultivated_m2"] = written(rng, cultivated)
    if basic:
        fields["basic_farmland_m2"] = written(rng, basic)
    if eco:
        fields["eco_redline_m2"] = written(rng, eco)
    if rng.random() < 0.08 and not cultivated and not eco:
        # Given in 亩: a whole number of 亩, or 1.5 亩 (1000.00 ㎡), or 0.0000075 亩 (0.01 ㎡).
        del fields["area_m2"]
        fields["area_mu"] = rng.choice(["1.5", "7", "0.0000075", "12.345"])
    return fields


@dataclass
class Sim:
    """What the generator knows of a case, to emit only commands the rules accept."""

    found_on: date
    site: dict[str, Any]
    day: date
    filed: bool = False
    decided: bool = False
    rectified: bool = False
    closed: bool = False
    dismissed: bool = False


def later(rng: random.Random, day: date) -> date:
    return min(LAST_DAY, day + timedelta(days=rng.choice([0, 0, 1, 2, 3, 5, 8, 13, 21])))


def generate(rng: random.Random, cases: int) -> tuple[list[Command], list[Command]]:
    """Two batches: most of the history, then late entries and continuations recorded later."""
    # (the day it was entered, a tie-breaker keeping each case's order, the command)
    first: list[tuple[date, int, Command]] = []
    second: list[tuple[date, int, Command]] = []
    order = 0
    for number in range(cases):
        ref = f"GEN-{number:04d}"
        found_on = date(2021, 12, 1) + timedelta(days=rng.randrange(0, 140))
        township = rng.randrange(len(TOWNSHIPS))
        unit = UNITS[township] if rng.random() < 0.8 else rng.choice(UNITS)
        site = {
            "cmd": "find_site",
            "ref": ref,
            "on": found_on.isoformat(),
            "source": rng.choice(["巡查", "卫片", "举报", "上级交办", "自查", "其他"]),
            "township": TOWNSHIPS[township],
            "unit": unit,
            "violation_types": rng.sample(VIOLATION_TYPES, rng.choice([1, 1, 1, 2, 3])),
            "major_hazard": rng.random() < 0.1,
            "village": rng.choice(["东村", "西村", "南庄", "北岭"]),
            **areas(rng),
        }
        sim = Sim(found_on=found_on, site=dict(site), day=found_on)
        path: list[tuple[date, Command]] = [(found_on, site)]
        late_entry = rng.random() < 0.2
        for _ in range(rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12])):
            command = step(rng, ref, sim)
            if command is not None:
                path.append((sim.day, command))
        split = rng.randint(1, len(path)) if rng.random() < 0.3 else len(path)
        if late_entry and not (sim.closed or sim.dismissed):
            # Entered after everything else, dated back (before a filing, say): a stop mostly,
            # or a referral, or a payment.
            back = sim.found_on + timedelta(days=rng.randint(0, (sim.day - sim.found_on).days))
            late: Command = {"ref": ref, "on": back.isoformat()}
            kind = rng.choice(["stop", "stop", "refer", "record"])
            if kind == "stop":
                late.update(cmd="stop", order_no="补录")
            elif kind == "refer":
                late.update(
                    cmd="refer", agency=rng.choice(["公安", "其他"]), persons=1, doc_no="补录"
                )
            else:
                late.update(cmd="record_rectification", fine_paid_yuan="100.01", note="补录")
            path.append((sim.day, late))  # entered on the case's last day
            split = min(split, len(path) - 1)
        for index, (entered, command) in enumerate(path):
            order += 1
            (first if index < split else second).append((entered, order, command))
    # Interleave the cases as a bureau would, by the day each was entered; a case keeps its order.
    return [c for *_, c in sorted(first)], [c for *_, c in sorted(second)]


def step(rng: random.Random, ref: str, sim: Sim) -> Command | None:
    """One random command the rules accept in the case's present state."""
    sim.day = later(rng, sim.day)
    on = sim.day.isoformat()
    base = {"ref": ref, "on": on}
    if sim.closed or sim.dismissed:
        roll = rng.random()
        if roll < 0.45:
            sim.closed = sim.dismissed = sim.rectified = False
            return {"cmd": "reopen", **base, "reason": "复查"}
        if roll < 0.7:
            return {"cmd": "flag", **base, "kind": rng.choice(["典型案件", "挂牌督办", "顶风作案"])}
        if roll < 0.85:
            return correction(rng, base, sim)
        return None
    choices = ["stop", "refer", "order", "record", "record", "complete", "flag", "correct"]
    choices += ["dismiss"] if rng.random() < 0.25 else []
    choices += ["file", "file"] if not sim.filed else []
    choices += ["decide", "decide"] if sim.filed and not sim.decided else []
    choices += ["close", "close", "close"] if sim.rectified else []
    choice = rng.choice(choices)
    if choice == "stop":
        return {"cmd": "stop", **base, "outcome": rng.choice(["", "停工", "恢复原状", "制止无效"])}
    if choice == "dismiss":
        sim.dismissed = True
        return {
            "cmd": "dismiss",
            **base,
            "reason": rng.choice(["非违法", "重复", "不属实", "其他"]),
        }
    if choice == "file":
        sim.filed = True
        return {"cmd": "file_case", **base, "case_no": f"立{ref}", "handlers": ["张三"]}
    if choice == "decide":
        sim.decided = True
        fine = {"fine_yuan": written(rng, money(rng, 0, 200000))}
        if rng.random() < 0.3:
            fine["confiscated_income_yuan"] = str(money(rng, 0, 50000))
        return {"cmd": "decide_penalty", **base, "decision_no": f"罚{ref}", **fine}
    if choice == "refer":
        agency = rng.choice(["公安", "公安", "纪检监察", "住建", "法院", "乡镇政府", "其他"])
        return {"cmd": "refer", **base, "agency": agency, "persons": rng.choice([0, 1, 1, 2, 3])}
    if choice == "order":
        due = sim.day + timedelta(days=rng.randint(-5, 60))  # a deadline may even be past
        measures = rng.sample(["拆除复耕", "补办手续", "罚款", "没收", "其他"], rng.randint(1, 2))
        return {
            "cmd": "order_rectification",
            **base,
            "measures": measures,
            "due_on": due.isoformat(),
        }
    if choice == "record":
        fields: Command = {"cmd": "record_rectification", **base}
        if rng.random() < 0.5:
            fields["fine_paid_yuan"] = written(rng, money(rng, 0, 20000))  # instalments
        if rng.random() < 0.5:
            fields["demolished_m2"] = str(money(rng, 0, 500))
        if rng.random() < 0.4:
            if rng.random() < 0.2:
                fields["restored_mu"] = str(rng.randint(0, 9) + Decimal("0.5"))
            else:
                fields["restored_m2"] = written(rng, money(rng, 0, 5000))  # may exceed cultivated
        if sim.decided and rng.random() < 0.3:
            fields["permit_doc_no"] = f"补{ref}"
        return fields
    if choice == "complete":
        sim.rectified = True
        return {"cmd": "complete_rectification", **base}
    if choice == "close":
        sim.closed = True
        return {"cmd": "close_out", **base}
    if choice == "flag":
        return {"cmd": "flag", **base, "kind": rng.choice(["典型案件", "挂牌督办", "屡禁不止"])}
    return correction(rng, base, sim)


def correction(rng: random.Random, base: Command, sim: Sim) -> Command:
    fields: Command = {"cmd": "correct_site", **base, "reason": "复测"}
    roll = rng.random()
    if roll < 0.3:
        township = rng.randrange(len(TOWNSHIPS))
        fields["township"] = TOWNSHIPS[township]
        fields["unit"] = UNITS[township]
    elif roll < 0.55:
        fields.update(areas(rng))  # all areas anew: consistent by construction
        for name in ("cultivated_m2", "basic_farmland_m2", "eco_redline_m2"):
            fields.setdefault(name, "0")
    elif roll < 0.75:
        fields["violation_types"] = rng.sample(VIOLATION_TYPES, rng.randint(1, 2))
    elif roll < 0.9:
        fields["major_hazard"] = not sim.site.get("major_hazard", False)
        sim.site["major_hazard"] = fields["major_hazard"]
    else:
        fields["basic_farmland_m2"] = "0"  # always consistent
    return fields


# The test ---------------------------------------------------------------------------------

CUTOFFS = [None, "2022-01-31", "2022-02-28", "2022-03-31", "2022-05-15"]


@pytest.fixture(scope="module")
def scenario() -> tuple[list[Command], list[Command]]:
    return generate(random.Random(SEED), CASES)


def test_the_scenario_is_varied(scenario: tuple[list[Command], list[Command]]) -> None:
    """The generator exercises what the comparison is meant to cover."""
    first, second = scenario
    commands = first + second
    names = [c["cmd"] for c in commands]
    assert len({c["ref"] for c in commands}) == CASES
    for name in ("dismiss", "reopen", "correct_site", "decide_penalty", "close_out"):
        assert names.count(name) >= 10, name
    late = [c for c in second if "补录" in (c.get("order_no"), c.get("doc_no"), c.get("note"))]
    assert sum(1 for c in late if c["cmd"] == "stop") >= 10
    assert {c["cmd"] for c in late} == {"stop", "refer", "record_rectification"}
    final = fold(commands, None)
    states = {case.state for case in final.values()}
    assert states == {
        "已发现",
        "已制止",
        "已立案",
        "已处罚",
        "整改中",
        "已整改",
        "已销号",
        "已排除",
    }
    total = expected_stats(commands, "township", None, date.today())["total"]
    assert total["over_crime_threshold_unreferred"] >= 5
    assert total["overdue"] >= 10
    assert total["referred_police_persons"] > total["referred_police"] > 0
    assert total["permits"] > 0 and total["major_hazards_rectified"] > 0


def test_stats_equal_an_independent_computation(
    db_url: str, tmp_path: Path, scenario: tuple[list[Command], list[Command]]
) -> None:
    first, second = scenario
    between = datetime.now(UTC)
    for number, batch in enumerate(scenario, start=1):
        path = tmp_path / f"batch{number}.jsonl"
        path.write_text(jsonl(batch), encoding="utf-8")
        code, out, err = cli(
            "--db", db_url, "--actor", f"staff-{number}", "record", "--file", str(path)
        )
        assert (code, err) == (0, ""), err
        assert out.startswith(f"已记录 {len(batch)} 条命令")
        if number == 1:
            between = datetime.now(UTC)
    today = date.today()
    for as_of in CUTOFFS:
        for by in ("township", "unit", "violation_type", "month"):
            options = ["--by", by] + (["--as-of", as_of] if as_of else [])
            expected = expected_stats(
                first + second, by, date.fromisoformat(as_of) if as_of else None, today
            )
            assert stats(db_url, *options) == expected, (by, as_of)
    # A read model rebuilt from the log says the same.
    code, _, err = cli("--db", db_url, "rebuild")
    assert code == 0, err
    for as_of in (None, "2022-02-28"):
        options = ["--by", "month"] + (["--as-of", as_of] if as_of else [])
        expected = expected_stats(
            first + second, "month", date.fromisoformat(as_of) if as_of else None, today
        )
        assert stats(db_url, *options) == expected, ("rebuilt", as_of)
    # What the ledger said before the late entries were recorded: the first batch alone.
    known = stats(db_url, "--known-at", between.isoformat(), "--as-of", "2022-03-31")
    assert datetime.fromisoformat(known.pop("known_at")) == between
    expected = expected_stats(first, "township", date(2022, 3, 31), today)
    del expected["known_at"]
    assert known == expected
