"""`landledger record`: JSON lines from --file or standard input, all or nothing per file."""

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import cli, cmd, find, jsonl

from service.ledger import LandLedger

GOOD = [
    find("R-1"),
    find("R-2", township="荫城镇", unit="荫城自然资源所"),
    cmd("stop", "R-1", "2022-02-11", order_no="停1"),
    cmd("file_case", "R-1", "2022-02-12", case_no="立1"),
]


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "commands.jsonl"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_record_a_file(app: LandLedger, db_url: str, tmp_path: Path) -> None:
    code, out, err = cli("--db", db_url, "record", "--file", write(tmp_path, jsonl(GOOD)))
    assert (code, err) == (0, "")
    assert out == "已记录 4 条命令（4 个事件），涉及 2 个案件，其中新发现 2 个\n"
    assert app.case("R-1").state == "已立案"
    assert app.case("R-2").site.township == "荫城镇"


def test_record_standard_input(app: LandLedger, db_url: str) -> None:
    code, out, err = cli("--db", db_url, "--actor", "su-01", "record", stdin=jsonl(GOOD))
    assert (code, err) == (0, "")
    assert "已记录 4 条命令" in out
    assert {ev.actor for ev in app.history("R-1")} == {"su-01"}


@pytest.mark.backends("sqlite")  # reading the input
def test_blank_lines_are_skipped(app: LandLedger, db_url: str) -> None:
    text = "\n" + jsonl(GOOD[:2]).replace("\n", "\n\n  \n", 1)
    code, out, _ = cli("--db", db_url, "record", stdin=text)
    assert code == 0 and "已记录 2 条命令" in out


@pytest.mark.backends("sqlite")  # the rules, before any write
@pytest.mark.parametrize(
    ("fifth", "expected"),
    [
        # A rule of the site itself.
        (
            find("R-3", area_m2="100", cultivated_m2="200"),
            "第5行 find_site：耕地面积 200.00㎡ 大于占地面积 100.00㎡（全部未写入）",
        ),
        # A rule against what the lines before it did.
        (
            cmd("file_case", "R-1", "2022-02-13", case_no="立2"),
            "第5行 file_case：案件 R-1 已立案，一个案件只能立案一次（全部未写入）",
        ),
        (
            cmd("decide_penalty", "R-2", "2022-02-13", decision_no="罚1", fine_yuan="10"),
            "第5行 decide_penalty：案件 R-2 尚未立案，不能作出处罚决定（全部未写入）",
        ),
        # A value the command model refuses.
        (
            cmd("refer", "R-1", "2022-02-13", agency="检察院"),
            "第5行 refer：移送机关：“检察院”不是有效值，"
            "可选：公安、纪检监察、住建、法院、乡镇政府、其他",
        ),
        (
            cmd("stop", "R-1", "2022-02-13", order="停2"),
            "第5行 stop：未知字段 “order”（stop 命令没有这个字段，请检查拼写）",
        ),
        (cmd("stop", "R-9", "2022-02-13"), "第5行 stop：编号 “R-9” 不存在（全部未写入）"),
        ({"cmd": "halt", "ref": "R-1", "on": "2022-02-13"}, "第5行 halt：未知命令 “halt”"),
    ],
    ids=["site", "filed-twice", "not-filed", "enum", "unknown-field", "unknown-ref", "unknown-cmd"],
)
def test_a_bad_fifth_line_writes_nothing(
    app: LandLedger, db_url: str, tmp_path: Path, fifth: dict[str, Any], expected: str
) -> None:
    app.campaign()
    before = app.fingerprint()
    path = write(tmp_path, jsonl([*GOOD, fifth, find("R-4")]))
    code, out, err = cli("--db", db_url, "record", "--file", path)
    assert code == 1
    assert out == ""
    assert err.startswith("错误：") and expected in err
    assert app.fingerprint() == before
    assert cli("--db", db_url, "history", "R-1")[0] == 1  # line 1's case was not recorded


@pytest.mark.backends("sqlite")  # reading the input
def test_line_numbers_count_blank_lines(app: LandLedger, db_url: str) -> None:
    lines = [json.dumps(c, ensure_ascii=False) for c in GOOD[:3]]
    text = "\n".join([lines[0], "", lines[1], "", '{"cmd": "stop", "ref": "R-1"}', lines[2]])
    code, _, err = cli("--db", db_url, "record", stdin=text)
    assert code == 1
    assert "第5行 stop：日期（on）：必填，stop 命令缺少此字段" in err


@pytest.mark.backends("sqlite")  # reading the input
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"cmd": "stop", "ref": "R-1", "on": "2022-02-11",}', "第2行：不是有效的 JSON"),
        ("stop R-1 2022-02-11", "第2行：不是有效的 JSON"),
        ('["stop", "R-1"]', "第2行：命令应为一个 JSON 对象"),
        ('{"ref": "R-1", "on": "2022-02-11"}', "第2行：缺少字段 cmd（命令名）"),
        ('{"cmd": "reopen_case", "ref": "R-1", "on": "2022-02-11"}', "未知命令 “reopen_case”"),
    ],
)
def test_an_unparsable_line_or_unknown_command_exits_1(
    app: LandLedger, db_url: str, line: str, expected: str
) -> None:
    app.campaign()
    before = app.fingerprint()
    code, _, err = cli("--db", db_url, "record", stdin=jsonl(GOOD[:1]) + line + "\n")
    assert code == 1
    assert expected in err
    assert app.fingerprint() == before


@pytest.mark.backends("sqlite")  # reading the input
def test_empty_input_and_a_missing_file_exit_1(db_url: str, tmp_path: Path) -> None:
    code, _, err = cli("--db", db_url, "record", stdin="\n\n")
    assert code == 1 and "没有命令" in err
    code, _, err = cli("--db", db_url, "record", "--file", str(tmp_path / "nope.jsonl"))
    assert code == 1 and "无法读取命令文件" in err


@pytest.mark.backends("sqlite")  # reading the input
def test_input_that_is_not_utf8_exits_1(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "gbk.jsonl"
    path.write_bytes(jsonl(GOOD[:1]).encode("gbk"))
    code, _, err = cli("--db", db_url, "record", "--file", str(path))
    assert code == 1 and "UTF-8" in err


def test_one_file_is_one_transaction_across_many_cases(app: LandLedger, db_url: str) -> None:
    """A long file is all or nothing too: a rejection on its last line leaves no trace."""
    commands: list[dict[str, Any]] = []
    for i in range(200):
        commands += [find(f"M-{i}"), cmd("stop", f"M-{i}", "2022-02-11")]
    app.campaign()
    before = app.fingerprint()
    bad = [*commands, cmd("close_out", "M-7", "2022-02-12")]
    code, _, err = cli("--db", db_url, "record", stdin=jsonl(bad))
    assert code == 1 and "第401行 close_out：" in err
    assert app.fingerprint() == before
    code, out, _ = cli("--db", db_url, "record", stdin=jsonl(commands))
    assert code == 0
    assert out == "已记录 400 条命令（400 个事件），涉及 200 个案件，其中新发现 200 个\n"
    assert app.fingerprint().startswith("401:")  # the campaign definition and 400 events


@pytest.mark.backends("sqlite")  # reading the input
def test_a_byte_order_mark_is_not_part_of_the_first_line(
    app: LandLedger, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(jsonl(GOOD[:1]).encode("utf-8-sig"))
    code, _, err = cli("--db", db_url, "record", "--file", str(path))
    assert (code, err) == (0, "")
    code, _, err = cli("--db", db_url, "record", stdin="\ufeff" + jsonl(GOOD[1:2]))
    assert (code, err) == (0, "")
    assert app.case("R-2").state == "已发现"


def test_a_rejected_first_batch_leaves_a_new_store_empty(db_url: str) -> None:
    """Opening, reading or failing to write a new store writes nothing, not even the campaign."""
    code, _, _ = cli("--db", db_url, "stats", "--json")
    assert code == 0
    bad = cmd("file_case", "NOPE-1", "2022-02-11", case_no="L1")
    code, _, err = cli("--db", db_url, "record", stdin=jsonl([find("NEW-1"), bad]))
    assert code == 1 and "第2行" in err
    assert LandLedger(db_url).fingerprint() == "0:" + "0" * 64
    code, out, _ = cli("--db", db_url, "record", stdin=jsonl([find("NEW-1")]))
    assert code == 0 and "1 个事件" in out
    assert LandLedger(db_url).fingerprint().startswith("2:")  # the campaign, then the case
