"""Every export read back with python-calamine and openpyxl, its numbers checked against
`stats --json` for the same cutoff, its stamp (cutoff, fingerprint) and its masking."""

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import cli, stats
from sheets import ID, PHONE, both, record_varied

from domain.values import m2_to_mu, mu_to_m2
from exports.columns import COLUMNS
from exports.table2 import FIRST_DATA_ROW, MEASURE_COLUMNS
from service.ledger import LandLedger


@pytest.fixture
def varied(app: LandLedger, db_url: str) -> str:
    record_varied(app)
    return db_url


def export(db: str, kind: str, out: Path, *options: str) -> str:
    code, stdout, stderr = cli("--db", db, "export", kind, "--out", str(out), *options)
    assert code == 0, stderr
    return stdout


def expected_cell(measure: str, unit: str, value: Any) -> Any:
    """What 附件2 must show for a `stats --json` value, computed here independently."""
    if unit == "n":
        return value
    if unit == "mu":
        return float(m2_to_mu(Decimal(value)))
    if unit == "wan":
        return float((Decimal(value) / 10000).quantize(Decimal("0.01")))
    if unit == "rate":
        return float(Decimal(value))
    return float(Decimal(value))


@pytest.mark.parametrize("by", ["township", "unit"])
def test_table2_equals_stats_json_cell_for_cell(varied: str, tmp_path: Path, by: str) -> None:
    out = tmp_path / "t2.xlsx"
    stdout = export(varied, "table2", out, "--as-of", "2022-02-28", "--by", by)
    expected = stats(varied, "--as-of", "2022-02-28", "--by", by)
    rows = both(out)
    first = FIRST_DATA_ROW - 1
    groups = expected["groups"]
    assert len(groups) == (10 if by == "township" else 13)
    for i, group in enumerate([*groups, {"key": "合计", **expected["total"]}]):
        row = rows[first + i]
        assert row[1 if i < len(groups) else 0] == group["key"]
        if i < len(groups):
            assert row[0] == i + 1
        for col, (_, measure, unit) in enumerate(MEASURE_COLUMNS, start=2):
            want = expected_cell(measure, unit, group[measure])
            assert row[col] == pytest.approx(want), (group["key"], measure)
    # 合计's area is converted from the summed ㎡, not summed from the rounded rows
    total_area = rows[first + len(groups)][5]
    assert total_area == float(m2_to_mu(Decimal(expected["total"]["area_m2"])))
    text = " ".join(str(v) for row in rows for v in row)
    assert "截至日期：2022年2月28日" in text
    assert "填报人：王建国" in text and "0355-8123456" in text
    fingerprint = stdout.split("数据指纹 ")[1].split("；")[0]
    assert f"数据指纹 {fingerprint}" in text
    assert fingerprint == LandLedger(varied).fingerprint()


@pytest.mark.backends("sqlite")  # the sheet's layout
def test_table2_headers_are_two_level_and_named_as_design(varied: str, tmp_path: Path) -> None:
    out = tmp_path / "t2.xlsx"
    export(varied, "table2", out)
    rows = both(out)
    assert rows[1][0] == "长治市上党区非法违法建设行为、重大事故隐患统计表"
    # printed on several lines: the headers read without their line breaks
    top, below = ([v.replace("\n", "") for v in row] for row in rows[3:5])
    assert top[:3] == ["序号", "乡镇（街道）", "发现问题"]
    assert top[5] == "面积（亩）" and top[-1] == "备注"
    assert below[2:5] == ["发现", "排除", "违法"]
    assert "达标未移送公安" in below


def test_ledger_one_row_per_case_masked_and_numbers_add_up(varied: str, tmp_path: Path) -> None:
    out = tmp_path / "ledger.xlsx"
    stdout = export(varied, "ledger", out)
    rows = both(out)
    header = [h.replace("\n", "") for h in rows[2]]  # printed with a unit on its own line
    assert header == [c.header for c in COLUMNS]
    body = rows[3:]
    assert len(body) == 8
    at = {h: i for i, h in enumerate(header)}
    by_ref = {r[at["编号"]]: r for r in body}
    assert by_ref["A-01"][at["证件号码"]] == "110101********1234"
    assert by_ref["A-01"][at["联系电话"]] == "138****5678"
    assert ID not in json.dumps([str(v) for r in body for v in r], ensure_ascii=False)
    # official township order, then ref
    townships = [r[at["乡镇（街道）"]] for r in body]
    assert townships == sorted(townships, key=["韩店街道", "苏店镇", "南宋乡", "北呈乡"].index)
    # the cells hold the exact 亩, so the ㎡ come back exactly; they add up to the statistics
    total = stats(varied)["total"]
    violations = [r for r in body if r[at["状态"]] != "已排除"]
    area = sum(mu_to_m2(Decimal(str(r[at["占地面积（亩）"]]))) for r in violations)
    assert area == Decimal(total["area_m2"])
    assert mu_to_m2(Decimal(str(by_ref["A-03"][at["占地面积（亩）"]]))) == Decimal("100.10")
    assert len(violations) == total["violations"]
    assert sum(1 for r in body if r[at["状态"]] == "已销号") == total["closed_out"]
    fine = sum(Decimal(str(r[at["罚款（元）"]] or 0)) for r in violations)
    assert fine == Decimal(total["fines_decided_yuan"])
    a02 = by_ref["A-02"]
    assert a02[at["状态"]] == "已销号"
    assert a02[at["移送纪检监察人数"]] == 1 and a02[at["移送其他部门"]] == "住建"
    assert a02[at["补办手续（宗）"]] == 1 and a02[at["标记"]] == "典型案件"
    assert a02[at["重大事故隐患"]] == "是" and a02[at["村"]] == "东村"
    reopened = by_ref["A-05"]
    assert reopened[at["重开日期"]] == date(2022, 3, 2)
    assert reopened[at["销号日期"]] in ("", None) and reopened[at["整改到位日期"]] in ("", None)
    assert "个人信息已遮蔽" in rows[1][0]
    assert stdout.split("数据指纹 ")[1].split("；")[0] in rows[1][0]


def test_ledger_unmasked_and_as_of(varied: str, tmp_path: Path) -> None:
    out = tmp_path / "ledger.xlsx"
    export(varied, "ledger", out, "--unmasked", "--as-of", "2022-02-10")
    rows = both(out)
    body = rows[3:]
    at = {h: i for i, h in enumerate(rows[2])}
    assert {r[at["编号"]] for r in body} == {"A-01", "A-02", "A-03", "A-04", "A-05", "A-06", "A-08"}
    a01 = next(r for r in body if r[at["编号"]] == "A-01")
    assert a01[at["证件号码"]] == ID and a01[at["联系电话"]] == PHONE
    assert a01[at["状态"]] == "已发现"  # its stop on 02-11 is after the cutoff
    assert "截至 2022-02-10" in rows[1][0]


def test_problems_are_the_open_items_with_overdue_and_alerts(varied: str, tmp_path: Path) -> None:
    out = tmp_path / "problems.xlsx"
    export(varied, "problems", out, "--as-of", "2022-03-31")
    total = stats(varied, "--as-of", "2022-03-31")["total"]
    rows = both(out)
    header = rows[2]
    at = {h: i for i, h in enumerate(header)}
    items = [r for r in rows[3:] if isinstance(r[0], int | float) and r[at["编号"]]]
    assert len(items) == total["open"]
    overdue = [r for r in items if r[at["逾期天数"]] not in ("", None)]
    assert len(overdue) == total["overdue"]
    a01 = next(r for r in items if r[at["编号"]] == "A-01")
    assert a01[at["逾期天数"]] == 30 and "整改逾期30天" in a01[at["预警"]]
    a02 = next((r for r in items if r[at["编号"]] == "A-02"), None)
    assert a02 is None  # closed out
    a08 = next(r for r in items if r[at["编号"]] == "A-08")
    assert "达标未移送公安" in a08[at["预警"]] and a08[at["下一步"]].startswith("移送公安")
    bands = [r[0] for r in rows[3:] if isinstance(r[0], str) and "：" in r[0]]
    assert bands[0].startswith("韩店街道") and "苏店镇：" in " ".join(bands)


@pytest.mark.backends("sqlite")  # the sheet's layout and masking
def test_contacts_lists_every_unit_with_its_mobile_shown(varied: str, tmp_path: Path) -> None:
    """附件1 exists so that colleagues can call the contacts: their mobiles are not masked
    (README), while a party's phone in the ledger of the same store still is."""
    out = tmp_path / "contacts.xlsx"
    export(varied, "contacts", out)
    rows = both(out)
    body = rows[4:]
    assert len(body) == 13
    brigade = next(r for r in body if r[1] == "执法监察大队")
    assert brigade[2:6] == ["王建国", "大队长", "0355-8123456", "13803550001"]
    assert sum(1 for r in body if r[-1] == "未报送") == 12
    export(varied, "ledger", tmp_path / "ledger.xlsx")
    cells = [v for r in both(tmp_path / "ledger.xlsx") for v in r]
    assert PHONE not in cells and "138****5678" in cells


def test_events_are_json_lines_one_event_a_line(varied: str, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    export(varied, "events", out)
    lines = out.read_text(encoding="utf-8").splitlines()
    head = json.loads(lines[0])
    count = int(head["fingerprint"].split(":")[0])
    events = [json.loads(line) for line in lines[1:]]
    assert len(events) == count
    assert head["fingerprint"] == LandLedger(varied).fingerprint() and head["masked"] is True
    positions = [e["position"] for e in events]
    assert positions == sorted(positions)
    found = next(e for e in events if e["event"] == "SiteFound" and e["ref"] == "A-01")
    assert found["title"] == "发现" and found["on"] == "2022-02-10"
    assert found["fields"]["party_id_no"] == "110101********1234"
    assert found["recorded_at"].endswith("+08:00") and found["actor"] == "staff-1"
    export(varied, "events", out, "--as-of", "2022-02-05", "--unmasked")
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()[1:]]
    assert len(rows) == count  # the events left out are listed as omitted: the chain is whole
    cut = [e for e in rows if not e.get("omitted")]
    assert all(e["on"] <= "2022-02-05" for e in cut if e["event"] != "SiteCorrected")
    assert not any(e["ref"] == "A-06" for e in cut)  # found after the cutoff
    # Exactly the case events dated by the cutoff: an export that kept nothing, or too much,
    # fails here.
    assert sorted((e["ref"], e["event"]) for e in cut if e["ref"]) == sorted(
        [("A-02", "SiteFound"), ("A-02", "CaseFiled"), ("A-02", "PenaltyDecided")]
        + [("A-02", "Referred")] * 2
        + [("A-02", "RectificationOrdered"), ("A-03", "SiteFound"), ("A-04", "SiteFound")]
        + [("A-05", "SiteFound")]
    )
    # A correction counts at every business date once its case is found: A-06's, dated 02-09.
    export(varied, "events", out, "--as-of", "2022-02-06")
    cut = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()[1:]]
    a06 = [e["event"] for e in cut if not e.get("omitted") and e["ref"] == "A-06"]
    assert a06 == ["SiteFound", "SiteCorrected"]


@pytest.mark.backends("sqlite")  # the template's layout
def test_template_imports_as_nothing(app: LandLedger, db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "template.xlsx"
    export(db_url, "template", out)
    rows = both(out)
    assert [h.replace("\n", "") for h in rows[2]] == [c.header for c in COLUMNS]
    assert rows[3][1].startswith("示例")
    notes = both(out, sheet=1)
    assert any("韩店街道" in str(v) for r in notes for v in r)
    before = app.fingerprint()
    code, stdout, stderr = cli("--db", db_url, "import", str(out))
    assert code == 0, stderr
    assert "新增 0 个案件" in stdout and "跳过示例行 1 行" in stdout
    assert app.fingerprint() == before


@pytest.mark.backends("sqlite")  # the arguments' validation
def test_export_misuse_and_bad_input(db_url: str, tmp_path: Path) -> None:
    assert cli("--db", db_url, "export", "nonsense", "--out", "x.xlsx")[0] == 2
    assert cli("--db", db_url, "export", "ledger")[0] == 2  # --out is required
    code, _, err = cli("--db", db_url, "export", "ledger", "--out", str(tmp_path / "no/x.xlsx"))
    assert code == 1 and "不存在" in err
    code, _, err = cli("--db", db_url, "export", "table2", "--out", "t.xlsx", "--as-of", "2/28")
    assert code == 1 and "--as-of" in err
    assert not (tmp_path / "no").exists()
