"""Issue 10: no input may poison or hang the store. Each reproduction of the issue, on both
backends: refused at the door with a Chinese message naming the field (and nothing written),
or written safely; and after it, `stats`, `rebuild`, `history`, `alerts` and every export
still answer. A refusal by parsing or validation alone, before any storage, runs on SQLite
alone (`backends("sqlite")`)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from helpers import cli, cmd, find, jsonl, record, rejected

from exports.columns import COLUMNS
from service.ledger import LandLedger

HEADER = [c.header for c in COLUMNS]
EXPORTS = ("table2", "ledger", "problems", "contacts", "events", "template")
CHINESE = re.compile(r"[\u4e00-\u9fff]")


def sheet(path: Path, rows: list[list[Any]]) -> Path:
    """A ledger sheet as a township office sends it: two title rows above the header."""
    book = openpyxl.Workbook()
    ws = book.active
    ws.append(["上党区违法用地台账"])
    ws.append(["填报单位：苏店自然资源所"])
    ws.append(HEADER)
    for cells in rows:
        ws.append(cells)
    book.save(path)
    return path


def row(**cells: Any) -> list[Any]:
    """A ledger row by header name (without the unit); the rest blank."""
    base = {
        "编号": "T-01",
        "乡镇（街道）": "苏店镇",
        "线索来源": "巡查",
        "发现日期": "2022-02-10",
        "违法类型": "占用耕地",
        "占地面积（亩）": "1.5",
        "责任单位": "苏店自然资源所",
        **cells,
    }
    return [base.get(h) for h in HEADER]


def write(tmp_path: Path, text: str, name: str = "commands.jsonl") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def recorded(db: str, tmp_path: Path, text: str) -> tuple[int, str, str]:
    return cli("--db", db, "record", "--file", write(tmp_path, text))


def fingerprint(db: str) -> str:
    app = LandLedger(db)
    try:
        return app.fingerprint()
    finally:
        app.close()


def refused(db: str, tmp_path: Path, text: str, *expected: str) -> str:
    """`record` of these lines exits 1 with a Chinese message holding `expected`; nothing
    written."""
    before = fingerprint(db)
    code, out, err = recorded(db, tmp_path, text)
    assert (code, out) == (1, ""), err
    assert err.startswith("错误：") and "Traceback" not in err
    for part in expected:
        assert part in err, err
    assert fingerprint(db) == before
    return err


def answers_everything(db: str, tmp_path: Path, ref: str | None = None) -> dict[str, Any]:
    """Every read-side entry point answers (exit 0); returns `stats --json`."""
    code, out, err = cli("--db", db, "stats", "--json")
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    for options in (["--as-of", "2022-03-31"], ["--known-at", "2099-01-01T00:00"]):
        code, _, err = cli("--db", db, "stats", "--json", *options)
        assert code == 0, err
    for command in (["alerts", "--json"], ["alerts"], ["rebuild"]):
        code, _, err = cli("--db", db, *command)
        assert code == 0, err
    code, again, err = cli("--db", db, "stats", "--json")
    assert code == 0 and json.loads(again) == result, err  # rebuilt = incremental
    if ref is not None:
        code, _, err = cli("--db", db, "history", ref)
        assert code == 0, err
    for kind in EXPORTS:
        out_path = tmp_path / f"out-{kind}.{'jsonl' if kind == 'events' else 'xlsx'}"
        code, _, err = cli("--db", db, "export", kind, "--out", str(out_path))
        assert code == 0, f"{kind}: {err}"
        code, _, err = cli(
            "--db", db, "export", kind, "--out", str(out_path), "--as-of", "2022-03-31"
        )
        assert code == 0, f"{kind} --as-of: {err}"
    return result


# 1. persons past 64 bits ------------------------------------------------------------------------


@pytest.mark.parametrize("persons", ["9223372036854775808", "18446744073709551616", "10001"])
def test_persons_past_the_bound_are_refused_and_the_store_stays_usable(
    app: LandLedger, db_url: str, tmp_path: Path, persons: str
) -> None:
    record(app, find("SD-2022-0002"))
    line = (
        '{"cmd":"refer","ref":"SD-2022-0002","on":"2022-03-20","agency":"公安",'
        f'"persons":{persons}}}\n'
    )
    refused(db_url, tmp_path, line, "第1行 refer：移送人数", "超过上限 10,000")
    # The next record works and exits 0: nothing was left half-written.
    code, out, err = recorded(db_url, tmp_path, line.replace(persons, "10000"))
    assert (code, err) == (0, "") and "已记录 1 条命令" in out
    result = answers_everything(db_url, tmp_path, "SD-2022-0002")
    assert result["total"]["referred_police_persons"] == 10000


def test_persons_written_as_a_huge_number_is_not_an_integer(db_url: str, tmp_path: Path) -> None:
    assert recorded(db_url, tmp_path, jsonl([find("P-1")]))[0] == 0
    line = '{"cmd":"refer","ref":"P-1","on":"2022-03-20","agency":"公安","persons":1e30}\n'
    refused(db_url, tmp_path, line, "移送人数", "应为整数")
    answers_everything(db_url, tmp_path, "P-1")


def test_persons_of_1e19_in_a_sheet_are_refused(db_url: str, tmp_path: Path) -> None:
    path = sheet(tmp_path / "persons.xlsx", [row(移送公安日期="2022-02-20", 移送公安人数=1e19)])
    before = fingerprint(db_url)
    code, _, err = cli("--db", db_url, "import", str(path))
    assert code == 1 and "第4行" in err and "移送人数" in err and "超过上限 10,000" in err, err
    assert fingerprint(db_url) == before


# 2. amounts that add up past 64 bits ------------------------------------------------------------


def test_an_amount_past_the_bound_is_refused(db_url: str, tmp_path: Path) -> None:
    assert recorded(db_url, tmp_path, jsonl([find("F-1")]))[0] == 0
    paid = cmd("record_rectification", "F-1", "2022-02-20", fine_paid_yuan="9999999999999.99")
    refused(db_url, tmp_path, jsonl([paid] * 9300), "第1行", "已缴罚没款", "10,000,000,000元")
    refused(
        db_url,
        tmp_path,
        jsonl([find("F-2", area_m2="100000000.01")]),
        "占地面积",
        "超过上限 100,000,000㎡",
    )
    refused(
        db_url,
        tmp_path,
        jsonl(
            [
                cmd("file_case", "F-1", "2022-02-11", case_no="立"),
                cmd(
                    "decide_penalty",
                    "F-1",
                    "2022-02-12",
                    decision_no="罚",
                    fine_yuan="10000000000.01",
                ),
            ]
        ),
        "第2行 decide_penalty：罚款",
        "超过上限 10,000,000,000元",
    )


def test_a_cases_records_add_up_to_at_most_one_amounts_bound(db_url: str, tmp_path: Path) -> None:
    assert recorded(db_url, tmp_path, jsonl([find("F-3")]))[0] == 0
    half = cmd("record_rectification", "F-3", "2022-02-20", fine_paid_yuan="5000000000")
    err = refused(db_url, tmp_path, jsonl([half, half, half]), "第3行 record_rectification")
    assert "案件 F-3 各次整改记录已合计 10000000000.00元" in err
    assert "超过一个案件的合计上限 10,000,000,000元" in err
    code, _, err = recorded(db_url, tmp_path, jsonl([half, half]))
    assert code == 0, err
    more = cmd("record_rectification", "F-3", "2022-02-21", fine_paid_yuan="0.01")
    refused(db_url, tmp_path, jsonl([more]), "已缴罚没款：案件 F-3")
    area = cmd("record_rectification", "F-3", "2022-02-21", demolished_m2="100000000")
    assert recorded(db_url, tmp_path, jsonl([area]))[0] == 0
    refused(db_url, tmp_path, jsonl([{**area, "demolished_m2": "0.01"}]), "拆除面积：案件 F-3")
    result = answers_everything(db_url, tmp_path, "F-3")
    assert result["total"]["fines_paid_yuan"] == "10000000000.00"
    assert result["total"]["demolished_m2"] == "100000000.00"


# 3. a sheet's counts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("permits", "expected"),
    [(10_000_000, "超过上限 100 宗"), (-3, "不能小于 0"), (2.5, "应为整数")],
)
def test_permit_counts_are_bounded(
    db_url: str, tmp_path: Path, permits: Any, expected: str
) -> None:
    cells = row(处罚决定日期="2022-02-15", 处罚决定书编号="罚1", 立案日期="2022-02-12")
    cells[HEADER.index("立案编号")] = "立1"
    cells[HEADER.index("补办手续（宗）")] = permits
    path = sheet(tmp_path / "permits.xlsx", [cells])
    before = fingerprint(db_url)
    code, _, err = cli("--db", db_url, "import", str(path))
    assert code == 1 and f"第4行 补办手续（宗）：“{permits}”{expected}" in err, err
    assert fingerprint(db_url) == before


# 4. look-alike refs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref", ["T-0001\u200b", "Ｔ-０００１", "Ｔ－０００１", " T-0001\ufeff", "T\u00ad-0001"]
)
def test_a_look_alike_ref_is_the_same_case(db_url: str, tmp_path: Path, ref: str) -> None:
    assert recorded(db_url, tmp_path, jsonl([find("T-0001")]))[0] == 0
    refused(db_url, tmp_path, jsonl([find(ref)]), "编号 “T-0001” 已存在")
    code, _, err = recorded(db_url, tmp_path, jsonl([cmd("stop", ref, "2022-02-11")]))
    assert code == 0, err
    code, out, _ = cli("--db", db_url, "history", ref)
    assert code == 0 and len(out.splitlines()) == 2


def test_reimporting_a_ledger_with_refs_retyped_full_width_appends_nothing(
    db_url: str, tmp_path: Path
) -> None:
    path = sheet(tmp_path / "first.xlsx", [row(编号="T-0001", 状态="已发现")])
    assert cli("--db", db_url, "import", str(path))[0] == 0
    before = fingerprint(db_url)
    again = sheet(tmp_path / "again.xlsx", [row(编号="Ｔ－０００１", 状态="已发现")])
    code, out, err = cli("--db", db_url, "import", str(again))
    assert code == 0 and "新增 0 个案件" in out and "已存在且相同 1 行" in out, err
    assert fingerprint(db_url) == before
    result = answers_everything(db_url, tmp_path, "T-0001")
    assert result["total"]["found"] == 1 and result["total"]["area_m2"] == "1000.00"


# 5. formulas without a result --------------------------------------------------------------------


def test_a_formula_without_a_stored_result_is_refused(db_url: str, tmp_path: Path) -> None:
    cells = row(立案日期="2022-02-12", 处罚决定日期="2022-02-15", 处罚决定书编号="罚1")
    cells[HEADER.index("立案编号")] = "立1"
    cells[HEADER.index("罚款（元）")] = "=5000*1"  # openpyxl writes no cached value
    path = sheet(tmp_path / "formula.xlsx", [cells])
    before = fingerprint(db_url)
    code, _, err = cli("--db", db_url, "import", str(path))
    assert code == 1, err
    assert "第4行 罚款：“=5000*1”是公式，但文件中没有保存它的计算结果" in err
    assert fingerprint(db_url) == before


# 6. tracebacks become Chinese refusals -----------------------------------------------------------


@pytest.mark.backends("sqlite")  # a line's parsing
def test_a_5000_digit_integer_is_refused(db_url: str, tmp_path: Path) -> None:
    line = '{"cmd":"refer","ref":"X","on":"2022-03-20","agency":"公安","persons":%s}\n'
    refused(db_url, tmp_path, line % ("9" * 5000), "第1行：数字位数过多")


@pytest.mark.backends("sqlite")  # a line's parsing
def test_a_deeply_nested_array_is_refused(db_url: str, tmp_path: Path) -> None:
    line = '{"cmd":"find_site","violation_types":' + "[" * 100_000 + "]" * 100_000 + "}\n"
    refused(db_url, tmp_path, line, "第1行：JSON 嵌套层数过多")


def test_history_of_bytes_that_are_not_utf8(db_url: str) -> None:
    code, out, err = cli("--db", db_url, "history", b"\xff\xfe".decode("utf-8", "surrogateescape"))
    assert (code, out) == (1, "")
    assert err == "错误：编号 “\\xff\\xfe” 含有无效字符，不存在\n"


@pytest.mark.backends("sqlite")  # an option's validation
def test_a_known_at_before_the_first_utc_moment(db_url: str, tmp_path: Path) -> None:
    out = str(tmp_path / "events.jsonl")
    for command in (["export", "events", "--out", out], ["stats", "--json"]):
        code, _, err = cli("--db", db_url, *command, "--known-at", "0001-01-01T00:00:00+08:00")
        assert code == 1 and "--known-at：“0001-01-01T00:00:00+08:00”不是有效时间" in err


@pytest.mark.parametrize("encoding", ["ascii", "gbk"])
def test_output_to_a_terminal_that_cannot_show_every_character(
    app: LandLedger, db_url: str, encoding: str
) -> None:
    record(app, find("E-1", note="面积 300㎡ ① “引号” 😀"))
    env = {**os.environ, "PYTHONIOENCODING": encoding, "PYTHONPATH": str(Path.cwd())}
    for args in (["history", "E-1"], ["stats"], ["history", "NO-SUCH"]):
        done = subprocess.run(
            [sys.executable, "-m", "tui.cli", "--db", db_url, *args],
            capture_output=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == (1 if "NO-SUCH" in args else 0), done.stderr
        assert b"Traceback" not in done.stderr
        shown = done.stdout.decode(encoding) + done.stderr.decode(encoding)
        word = (
            {"history": "苏店镇", "stats": "合计"}[args[0]]
            if "E-1" in args or args == ["stats"]
            else "不存在"
        )
        assert (word in shown) if encoding == "gbk" else ("\\u" in shown and word not in shown)


# 7. quietly wrong values -------------------------------------------------------------------------


@pytest.mark.backends("sqlite")  # a field's validation
@pytest.mark.parametrize("value", ["0.0000005", "1e-7", "1e-99999999", "0.001"])
def test_more_than_two_decimals_however_written(db_url: str, tmp_path: Path, value: str) -> None:
    line = jsonl([find("D-1")]).replace('"area_m2": "1000.00"', f'"area_m2": {value}')
    assert value in line
    refused(db_url, tmp_path, line, "占地面积", "最多两位小数")


@pytest.mark.backends("sqlite")  # a field's validation
@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("area_m2", '"1_000"', "占地面积：“1_000”不是数字"),
        ("area_m2", '"Infinity"', "占地面积：“Infinity”不是数字"),
        ("area_m2", "true", "占地面积：“True”不是数字"),
        ("lon", '"113.1"', "经度：“113.1”应为数字（不加引号）"),
        ("lon", "181", "经度：“181”应在 -180 到 180 之间"),
        ("lat", "-90.5", "纬度：“-90.5”应在 -90 到 90 之间"),
        ("ref", '"A\\u0000B"', "编号：“A\\x00B”含有控制字符 U+0000"),
        ("village", '"东\\u001b[2J村"', "村：“东\\x1b[2J村”含有控制字符 U+001B"),
        ("project_name", json.dumps("厂" * 2001), "项目名称：长 2,001 个字符，超过上限 2,000"),
        ("note", json.dumps("注" * 10001), "备注：长 10,001 个字符，超过上限 10,000"),
    ],
)
def test_quietly_wrong_values_are_refused(
    db_url: str, tmp_path: Path, field: str, value: str, expected: str
) -> None:
    line = jsonl([find("Q-1")]).rstrip("}\n") + f', "{field}": {value}}}\n'
    if field == "ref":
        line = line.replace('"ref": "Q-1", ', "")
    if field == "area_m2":
        line = line.replace('"area_m2": "1000.00", ', "")
    refused(db_url, tmp_path, line, expected)


def test_the_longest_texts_are_accepted(db_url: str, tmp_path: Path) -> None:
    site = find("L-1", project_name="厂" * 2000, note="注\n" * 5000)
    code, _, err = recorded(db_url, tmp_path, jsonl([site]))
    assert code == 0, err
    answers_everything(db_url, tmp_path, "L-1")


@pytest.mark.backends("sqlite")  # a line's parsing
def test_a_key_given_twice_is_refused(db_url: str, tmp_path: Path) -> None:
    line = jsonl([find("K-1")]).replace('"area_m2": "1000.00"', '"area_m2": "1", "area_m2": "2"')
    refused(db_url, tmp_path, line, "第1行：字段 “area_m2” 出现了两次")


@pytest.mark.backends("sqlite")  # a sheet's validation
@pytest.mark.parametrize(
    ("cell", "number_format"), [(-5, "yyyy-mm-dd"), (0, "yyyy-mm-dd"), ("2022-02-10 99:99", None)]
)
def test_dates_that_are_no_dates(
    db_url: str, tmp_path: Path, cell: Any, number_format: str | None
) -> None:
    path = sheet(tmp_path / "dates.xlsx", [row(发现日期=cell)])
    if number_format:
        book = openpyxl.load_workbook(path)
        book.active.cell(row=4, column=HEADER.index("发现日期") + 1).number_format = number_format
        book.save(path)
    code, _, err = cli("--db", db_url, "import", str(path))
    assert code == 1 and "第4行 发现日期：" in err and "不是有效日期" in err, err


def test_history_escapes_what_a_terminal_would_obey(app: LandLedger, db_url: str) -> None:
    # Stored before DESIGN's bound on control characters was checked: written past the door.
    record(app, find("H-1"))
    _write_raw(app, "H-1", "Flagged", {"kind": "典型案件", "note": "第一行\x1b[1A\x1b[2K伪造"})
    code, out, err = cli("--db", db_url, "history", "H-1")
    assert code == 0, err
    assert "\x1b" not in out and "第一行\\x1b[1A\\x1b[2K伪造" in out


# Events stored before the bounds: they never stop the read side ---------------------------------


def _write_raw(app: LandLedger, ref: str, kind: str, fields: dict[str, Any]) -> None:
    """Append an event as an older version would have, without today's checks."""
    from eventsourcing.persistence import StoredEvent

    from domain import events as e

    case = app.case(ref)
    cls = next(c for c in e.EVENT_CLASSES if c.__name__ == kind)
    state = {
        "timestamp": "2022-03-01T00:00:00+00:00",
        "actor": "old",
        "actor_unit": "",
        "ref": ref,
        "on": "2022-03-01",
        **fields,
    }
    stored = StoredEvent(
        originator_id=case.id,
        originator_version=case.version + 1,
        topic=cls.TOPIC,
        state=json.dumps(state, ensure_ascii=False).encode(),
    )
    app.recorder.insert_events([stored])
    app._cases.clear()


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("Referred", {"agency": "公安", "persons": 9223372036854775808}),
        ("Referred", {"agency": "公安", "persons": 10**30}),
        ("RectificationRecorded", {"fine_paid_yuan": "9" * 40}),
        ("RectificationRecorded", {"demolished_m2": "99999999999999999.99"}),
    ],
)
def test_an_event_stored_before_the_bounds_does_not_poison_the_read_side(
    app: LandLedger, db_url: str, tmp_path: Path, kind: str, fields: dict[str, Any]
) -> None:
    record(app, find("OLD-1"), find("OLD-2"))
    _write_raw(app, "OLD-1", kind, fields)
    # Later commands on the case, and on others, are recorded and reported as recorded.
    code, out, err = recorded(
        db_url,
        tmp_path,
        jsonl([cmd("stop", "OLD-1", "2022-03-02"), cmd("stop", "OLD-2", "2022-03-02")]),
    )
    assert code == 0 and "已记录 2 条命令" in out, err
    assert err.startswith("警告：第 ") and "（OLD-1，" in err and "未计入台账和统计" in err
    result = answers_everything(db_url, tmp_path, "OLD-1")
    assert result["total"]["found"] == 2 and result["total"]["stopped"] == 2
    assert result["total"]["referred_police_persons"] == 0  # left out, not overflowed


@pytest.mark.backends("sqlite")  # a sheet's validation
@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("1e99999999", "占地面积：“1e99999999”超出可记录的范围"),
        ("1_000", "占地面积：“1_000”不是数字"),
        ("Infinity", "占地面积：“Infinity”不是数字"),
        (1e19, "占地面积：“6666666666666666666666.67”超过上限 100,000,000㎡"),
    ],
)
def test_numbers_a_sheet_cannot_hold(db_url: str, tmp_path: Path, cell: Any, expected: str) -> None:
    path = sheet(tmp_path / "numbers.xlsx", [row(**{"占地面积（亩）": cell})])
    before = fingerprint(db_url)
    code, _, err = cli("--db", db_url, "import", str(path))
    assert code == 1 and f"第4行 {expected}" in err, err
    assert fingerprint(db_url) == before


@pytest.mark.backends("sqlite")  # the actor's validation
def test_an_actor_with_control_characters_is_refused(db_url: str, tmp_path: Path) -> None:
    path = write(tmp_path, jsonl([find("A-1")]))
    before = fingerprint(db_url)
    code, _, err = cli("--db", db_url, "--actor", "wang\x1b[2J", "record", "--file", path)
    assert code == 1
    assert err == "错误：操作人 “wang\\x1b[2J” 含有控制字符或过长，不能记录（全部未写入）\n"
    assert fingerprint(db_url) == before


@pytest.mark.backends("sqlite")  # a command's parsing
@pytest.mark.parametrize("text", ["\x85", "停字\x85", "\x0b停字", "停字\n"])
def test_a_control_character_at_a_texts_end_is_refused_not_trimmed_away(
    app: LandLedger, text: str
) -> None:
    # Trimming white space took these for spaces: "\x85" became an empty 文书编号, recorded.
    record(app, find("SD-2022-0002"))
    message = rejected(app, cmd("stop", "SD-2022-0002", "2022-03-20", order_no=text))
    assert "责令停止通知书编号" in message and "含有控制字符" in message


@pytest.mark.backends("sqlite")
def test_a_note_may_end_with_a_line_break(app: LandLedger) -> None:
    record(app, find("SD-2022-0002", note="现场核查\n"))
    assert app.case("SD-2022-0002").site.note == "现场核查"
