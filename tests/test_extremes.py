"""The largest values the domain accepts, many times over, through every projection and export;
and the store-wide sums exact past 64 bits on both backends."""

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
from helpers import cli, cmd, find, jsonl, record

from projections import stats
from projections.readmodel import ReadModel
from service.ledger import LandLedger

AREA = "100000000"  # DESIGN's bounds
MONEY = "10000000000"
PERSONS = 10_000
CASES = 40
EXPORTS = ("table2", "ledger", "problems", "contacts", "events", "template")


def largest_case(ref: str, closed: bool) -> list[dict[str, Any]]:
    """A case at every bound: its site, its penalty, its referrals, and records that add up to
    each total's bound."""
    half_area, half_money = str(Decimal(AREA) / 2), str(Decimal(MONEY) / 2)
    story = [
        find(
            ref,
            area_m2=AREA,
            cultivated_m2=AREA,
            basic_farmland_m2=AREA,
            eco_redline_m2=AREA,
            building_area_m2=AREA,
            major_hazard=True,
            note="注" * 10_000,
            project_name="厂" * 2_000,
        ),
        cmd("file_case", ref, "2022-02-11", case_no="立" * 2_000),
        cmd(
            "decide_penalty",
            ref,
            "2022-02-12",
            decision_no="罚",
            fine_yuan=MONEY,
            confiscated_income_yuan=MONEY,
            demolish_m2=AREA,
            confiscate_building_m2=AREA,
        ),
        *[
            cmd("refer", ref, "2022-02-13", agency=agency, persons=PERSONS)
            for agency in ("公安", "公安", "纪检监察", "住建")
        ],
        cmd("order_rectification", ref, "2022-02-14", measures=["拆除复耕"], due_on="2022-02-20"),
        *[
            cmd(
                "record_rectification",
                ref,
                "2022-02-15",
                demolished_m2=half_area,
                restored_m2=half_area,
                fine_paid_yuan=half_money,
                permit_area_m2=half_area,
                permit_doc_no="补",
            )
            for _ in range(2)
        ],
    ]
    if closed:
        story += [
            cmd("complete_rectification", ref, "2022-02-16"),
            cmd("close_out", ref, "2022-02-17"),
        ]
    return story


def test_the_largest_values_fold_through_everything(db_url: str, tmp_path: Path) -> None:
    commands = [c for n in range(CASES) for c in largest_case(f"M-{n:03d}", closed=n % 2 == 0)]
    path = tmp_path / "largest.jsonl"
    path.write_text(jsonl(commands), encoding="utf-8")
    code, out, err = cli("--db", db_url, "record", "--file", str(path))
    assert (code, err) == (0, ""), err
    # Twice over: the second half arrives as a catch-up on a read model already holding sums.
    path.write_text(
        jsonl([c for n in range(CASES) for c in largest_case(f"N-{n:03d}", closed=False)]),
        encoding="utf-8",
    )
    assert cli("--db", db_url, "record", "--file", str(path))[0] == 0
    n = 2 * CASES
    expected = {
        "found": n,
        "area_m2": f"{n * 100_000_000}.00",
        "basic_farmland_m2": f"{n * 100_000_000}.00",
        "fines_decided_yuan": f"{n * 20_000_000_000}.00",
        "fines_paid_yuan": f"{n * 10_000_000_000}.00",
        "demolished_m2": f"{n * 100_000_000}.00",
        "restored_m2": f"{n * 100_000_000}.00",
        "referred_police_persons": n * 2 * PERSONS,
        "referred_discipline_persons": n * PERSONS,
        "referred_other": n,
        "permits": n,
        "closed_out": CASES // 2,
        "over_crime_threshold_unreferred": 0,
    }
    results = []
    for options in ([], ["--as-of", "2022-03-31"], ["--known-at", "2099-01-01T00:00"], []):
        code, out, err = cli("--db", db_url, "stats", "--json", *options)
        assert code == 0, err
        total = json.loads(out)["total"]
        assert {k: total[k] for k in expected} == expected
        results.append(json.loads(out)["groups"])
        if not options:
            code, _, err = cli("--db", db_url, "rebuild")
            assert code == 0, err
    assert results[0] == results[-1]  # rebuilt = incremental
    for command in (["alerts"], ["alerts", "--json"], ["history", "M-000"]):
        code, _, err = cli("--db", db_url, *command)
        assert code == 0, err
    for kind in EXPORTS:
        out_path = tmp_path / f"{kind}.{'jsonl' if kind == 'events' else 'xlsx'}"
        for options in ([], ["--as-of", "2022-03-31"]):
            code, _, err = cli("--db", db_url, "export", kind, "--out", str(out_path), *options)
            assert code == 0, f"{kind}: {err}"
    book = openpyxl.load_workbook(tmp_path / "table2.xlsx", read_only=True)
    cells = [v for r in book.worksheets[0].iter_rows(values_only=True) for v in r if v is not None]
    book.close()
    assert n * 2_000_000 in cells  # 罚没款 in 万元, exact: 80 × 20,000,000,000 元


def _vector(**given: int) -> list[int]:
    return [given.get(m, 0) for m in stats.SUMMED]


def test_store_wide_sums_stay_exact_past_64_bits(app: LandLedger) -> None:
    """No store has 4.6 million cases at the largest amounts yet; the persisted sums and the
    as-of scan are still exact past 2^63 (SQLite would turn an overflowing integer sum into a
    REAL, or stop with "integer overflow")."""
    record(app, *[find(f"B-{n}", area_m2="1") for n in range(4)])
    model = ReadModel(app)
    try:
        model.catch_up()
        big = 2**63 - 1
        model._add_stats({("total", ""): _vector(area_m2=big, fines_paid_yuan=big)})
        model._add_stats({("total", ""): _vector(area_m2=big, fines_paid_yuan=big)})
        total = model.stats()["total"]
        exact = Decimal(2 * big + 400).scaleb(-2)  # the four sites' 1.00 ㎡ each, too
        assert total["area_m2"] == str(exact)
        assert total["fines_paid_yuan"] == str(Decimal(2 * big).scaleb(-2))
        # The as-of scan: each version row at 2^62 hundredths, four of them is 2^64.
        model.db.conn.execute(f"UPDATE rm_versions SET area_m2 = {2**62}, restored_m2 = {2**62}")
        at = model.stats(as_of=app.case("B-0").found_on)["total"]
        assert at["area_m2"] == str(Decimal(4 * 2**62).scaleb(-2))
        assert at["restored_m2"] == at["area_m2"]
    finally:
        model.close()
