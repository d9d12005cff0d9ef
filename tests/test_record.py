"""`landledger record`: JSON lines from --file or standard input, all or nothing per file."""

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError
from helpers import cli, cmd, find, jsonl, stats
from pydantic import BaseModel

from domain.case import RECORD_TOTALS, Case
from domain.commands import parse_command
from domain.fast import unchecked
from service import ledger as ledger_module
from service import states as states_module
from service.ledger import LandLedger
from service.session import CommandLines
from storage.sqlite import Write

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


@pytest.mark.backends("sqlite")  # reading the input and the rules, before any write
def test_every_rejected_line_is_told_in_line_order(
    app: LandLedger, db_url: str, tmp_path: Path
) -> None:
    """Errors on lines 1–3 of three kinds (a rule, bad JSON, a value the model refuses) are
    all told, in line order, and the last line says nothing was written."""
    app.campaign()
    before = app.fingerprint()
    lines = [
        jsonl([find("R-1", area_m2="100", cultivated_m2="200")]),
        '{"cmd": "stop", "ref": "R-1", "on": "2022-02-11",}\n',
        jsonl([cmd("refer", "R-1", "2022-02-13", agency="检察院")]),
        jsonl([find("R-2")]),
    ]
    code, out, err = cli("--db", db_url, "record", "--file", write(tmp_path, "".join(lines)))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "错误：第1行 find_site：耕地面积 200.00㎡ 大于占地面积 100.00㎡",
        "错误：第2行：不是有效的 JSON（第50列：此处应为用双引号括起的字段名"
        "（最后一项后面不能有逗号））",
        "错误：第3行 refer：移送机关：“检察院”不是有效值，"
        "可选：公安、纪检监察、住建、法院、乡镇政府、其他",
        "错误：共 3 行有错误（全部未写入）",
    ]
    assert app.fingerprint() == before


@pytest.mark.backends("sqlite")  # reading the input
def test_past_a_hundred_errors_the_rest_are_counted(db_url: str) -> None:
    bad = [cmd("stop", f"NO-{i}", "2022-02-11") for i in range(1, 131)]
    code, _, err = cli("--db", db_url, "record", stdin=jsonl([find("R-1"), *bad]))
    told = err.splitlines()
    assert code == 1 and len(told) == 102
    assert told[0] == "错误：第2行 stop：编号 “NO-1” 不存在"
    assert told[99] == "错误：第101行 stop：编号 “NO-100” 不存在"
    assert told[100:] == ["错误：还有 30 行错误未列出", "错误：共 130 行有错误（全部未写入）"]


IN_MU = {k: v for k, v in find("R-1").items() if k != "area_m2"}


@pytest.mark.backends("sqlite")  # reading the input
@pytest.mark.parametrize(
    ("line", "told"),
    [
        # JSON syntax: the column and what is wrong, in Chinese.
        ('{"cmd": "stop" "ref": "R-1"}', "第1行：不是有效的 JSON（第16列：此处缺少逗号）"),
        ('{"cmd": "stop", "ref": "R-1', "第1行：不是有效的 JSON（第24列：文本缺少结尾的双引号）"),
        ('{"cmd": "stop"} x', "第1行：不是有效的 JSON（第17列：一个对象结束后还有多余内容"),
        ('{"cmd": "stop", "ref": }', "第1行：不是有效的 JSON（第24列：此处应有一个值"),
        # null for a required field names the field and says it is required.
        ('{"cmd": "stop", "ref": "R-1", "on": null}', "第1行 stop：日期（on）：必填，不能为 null"),
        (
            '{"cmd": "stop", "ref": "R-1", "on": "2022-02-11", "order_no": null}',
            "责令停止通知书编号（order_no）：不能为 null（不填请省略此字段）",
        ),
        # An area given in 亩 is told as typed, in 亩.
        (json.dumps({**IN_MU, "area_mu": -3}), "占地面积（area_mu，亩）：“-3”不能小于 0"),
        # A list's example is the field's own.
        (
            json.dumps(cmd("file_case", "R-1", "2022-02-11", case_no="立1", handlers="张三")),
            '承办人：“张三”应为数组，例如 ["张三", "李四"]',
        ),
    ],
    ids=["comma", "unterminated", "extra", "value", "on-null", "null", "mu", "handlers"],
)
def test_messages_are_in_the_users_terms(db_url: str, line: str, told: str) -> None:
    code, _, err = cli("--db", db_url, "record", stdin=line + "\n")
    assert code == 1 and told in err
    assert err.endswith("（全部未写入）\n") and err.count("全部未写入") == 1
    assert not re.search("Expecting|delimiter|None|占用耕地|-2000", err)


@pytest.mark.backends("sqlite")  # reading the input
def test_a_command_file_that_cannot_be_read_is_named_in_chinese(
    db_url: str, tmp_path: Path
) -> None:
    code, _, err = cli("--db", db_url, "record", "--file", str(tmp_path))
    assert code == 1
    assert err == f"错误：无法读取命令文件 {tmp_path}：这是一个目录，不是文件（全部未写入）\n"
    code, _, err = cli("--db", db_url, "record", "--file", str(tmp_path / "nope.jsonl"))
    assert err == (
        f"错误：无法读取命令文件 {tmp_path / 'nope.jsonl'}：文件或目录不存在（全部未写入）\n"
    )


def test_sites_found_without_a_ref_are_numbered_from_the_lowest_free_and_told(
    app: LandLedger, db_url: str
) -> None:
    """Refs a user gave take no number: the next free numbers are given, and printed."""
    given = [find("R-1"), find("R-2"), find("SD-2022-0002")]
    assert cli("--db", db_url, "record", stdin=jsonl(given))[0] == 0
    anonymous = {k: v for k, v in find("").items() if k != "ref"}
    code, out, err = cli("--db", db_url, "record", stdin=jsonl([anonymous] * 3))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "已记录 3 条命令（3 个事件），涉及 3 个案件，其中新发现 3 个",
        "新编号：SD-2022-0001、SD-2022-0003、SD-2022-0004",
    ]
    assert app.case("SD-2022-0003").state == "已发现"


class Conflicting(LandLedger):
    """A store whose first write meets another session's."""

    conflicts = 1

    @contextmanager
    def appending(self) -> Iterator[Write]:
        if self.conflicts:
            self.conflicts -= 1
            raise IntegrityError("another session wrote first")
        with super().appending() as write:
            yield write


@pytest.mark.backends("sqlite")  # the batch's retry, not the store
def test_a_retried_batch_reads_its_file_again(db_url: str, tmp_path: Path) -> None:
    """Commands are read a line at a time and dropped once checked: a batch retried after a
    conflict reads the file again and records all of it, with the right line numbers."""
    path = Path(write(tmp_path, "\n" + jsonl([*GOOD, find("R-5")])))
    ledger = Conflicting(db_url)
    with path.open("rb") as stream:
        lines = CommandLines(stream)
        recorded = ledger.record(lines, "t")
        assert (recorded.commands, ledger.conflicts) == (5, 0)
        assert lines.numbers(range(5)) == {0: 2, 1: 3, 2: 4, 3: 5, 4: 6}
    assert ledger.case("R-1").state == "已立案"
    ledger.close()


def test_a_large_file_written_in_parts_is_still_all_or_nothing(
    app: LandLedger, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file of more than a part's events waits in parts in a temporary file and is written a
    part at a time into one transaction: a rejection after parts were set aside leaves
    nothing, and a good file is whole and in order."""
    monkeypatch.setattr(ledger_module, "FLUSH", 3)
    monkeypatch.setattr(ledger_module, "CHUNK", 2)
    commands = [c for i in range(5) for c in (find(f"P-{i}"), cmd("stop", f"P-{i}", "2022-02-11"))]
    app.campaign()
    before = app.fingerprint()
    code, _, err = cli(
        "--db", db_url, "record", stdin=jsonl([*commands, cmd("stop", "NO", "2022-02-11")])
    )
    assert (code, err) == (1, "错误：第11行 stop：编号 “NO” 不存在（全部未写入）\n")
    assert app.fingerprint() == before
    code, out, _ = cli("--db", db_url, "record", stdin=jsonl(commands))
    assert code == 0 and "已记录 10 条命令（10 个事件），涉及 5 个案件" in out
    assert app.fingerprint().startswith("11:")  # the campaign, then the ten
    assert cli("--db", db_url, "verify")[0] == 0
    assert stats(db_url)["total"]["found"] == 5
    assert [e.TITLE for e in app.history("P-4")] == ["发现", "制止"]


# A file touching more cases than a batch keeps in memory (service.states.LIVE, here 2): the
# states of the others wait in a temporary file and are read back when their case comes again.
SPREAD = [
    find("S-0", lon=Decimal("113.10"), lat=Decimal("36.2"), area_m2="1000", cultivated_m2="0.00"),
    find("S-1"),
    find("S-2", basic_farmland_m2="0.0"),
    cmd("correct_site", "S-0", "2022-02-11", area_m2="2000.50", reason="实测面积更正"),
    cmd("file_case", "S-1", "2022-02-11", case_no="立1"),
    cmd("decide_penalty", "S-1", "2022-02-12", decision_no="决1", fine_yuan="1000"),
    find("S-3"),
    find("S-4"),
    cmd("record_rectification", "S-1", "2022-02-13", fine_paid_yuan="400.50"),
    {k: v for k, v in find("S-5").items() if k != "ref"},  # numbered by the batch
    cmd("dismiss", "S-2", "2022-02-12", reason="不属实"),
    find("S-6"),
    cmd("record_rectification", "S-1", "2022-02-14", fine_paid_yuan="599.50", demolished_m2="10"),
    cmd("stop", "S-0", "2022-02-12", order_no="停1"),
    cmd("reopen", "S-2", "2022-02-13", reason="复核发现确属违法"),
    cmd("correct_site", "S-0", "2022-02-13", township="荫城镇", unit="荫城自然资源所", reason="改"),
    cmd("file_case", "S-0", "2022-02-14", case_no="立2"),
]


NUMBERED = "SD-2022-0001"  # the campaign's prefix, the lowest free number


def case_facts(ledger: LandLedger, ref: str) -> dict[str, Any]:
    """A case's state and history, without what differs between two stores (ids, times)."""
    case = ledger.case(ref)
    envelope = {"originator_id", "timestamp"}
    return {
        **{k: v for k, v in case.__dict__.items() if k not in ("id", "site")},
        "site": {k: v for k, v in case.site.__dict__.items() if k not in envelope},
        "history": [
            {k: v for k, v in event.__dict__.items() if k not in envelope}
            for event in ledger.history(ref)
        ],
    }


def written_in_parts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, list[str]]]:
    """Each part a batch writes: how many events, and the refs beside them."""
    parts: list[tuple[int, list[str]]] = []
    appending = LandLedger.appending

    @contextmanager
    def counted(self: LandLedger) -> Iterator[Write]:
        with appending(self) as write:

            def part(stored: Any, refs: Any) -> Any:
                parts.append((len(stored), [ref for ref, _ in refs]))
                return write(stored, refs)

            yield part

    monkeypatch.setattr(LandLedger, "appending", counted)
    return parts


def with_few_states_in_memory(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """LIVE set to 2; the list grows by one for each state moved out of memory."""
    moved: list[int] = []
    encoded = states_module.encoded

    def counted(case: Case) -> bytes:
        moved.append(1)
        return encoded(case)

    monkeypatch.setattr(states_module, "LIVE", 2)
    monkeypatch.setattr(states_module, "encoded", counted)
    return moved


FOUND = ["S-0", "S-1", "S-2", "S-3", "S-4", NUMBERED, "S-6"]  # SPREAD's new cases, in order


# FLUSH, CHUNK, and the parts written: their events (the campaign's definition first) and how
# many refs beside them. The refs in more parts than the events, or in fewer.
@pytest.mark.parametrize(
    ("flush", "chunk", "written"),
    [(3, 100, [(18, 3), (0, 3), (0, 1)]), (5, 2, [(5, 5), (6, 2), (6, 0), (1, 0)])],
)
def test_a_file_of_more_cases_than_kept_in_memory_is_recorded_the_same(
    new_store: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
    flush: int,
    chunk: int,
    written: list[tuple[int, int]],
) -> None:
    """Corrections, running totals, numbering and the rules read a case's state moved out of
    memory and back as they read one that never left: the same store, figures and message.
    The refs of the cases found, kept in the temporary file past LIVE, are written in parts
    beside the events: every one, to its case."""
    text = jsonl(SPREAD)
    whole = new_store()
    expected = cli("--db", whole, "record", stdin=text)
    assert expected[0] == 0, expected
    moved = with_few_states_in_memory(monkeypatch)
    parts = written_in_parts(monkeypatch)
    monkeypatch.setattr(ledger_module, "FLUSH", flush)
    monkeypatch.setattr(ledger_module, "CHUNK", chunk)
    bounded = new_store()
    assert cli("--db", bounded, "record", stdin=text) == expected
    assert len(moved) > 10  # the path under test was taken
    assert [(events, len(refs)) for events, refs in parts] == written
    assert [ref for _, refs in parts for ref in refs] == FOUND
    assert stats(bounded) == stats(whole)
    a, b = LandLedger(whole), LandLedger(bounded)
    assert b.ledger_recorder.count_refs() == a.ledger_recorder.count_refs() == 7
    for ref in FOUND:
        assert case_facts(b, ref) == case_facts(a, ref)
        assert b.ledger_recorder.case_ids([ref]) == {ref: b.case(ref).id}
    assert b.case("S-1").fine_paid_yuan == Decimal("1000.00")
    assert b.case("S-0").site.township == "荫城镇" and b.case("S-0").state == "已立案"
    a.close()
    b.close()
    assert cli("--db", bounded, "verify")[0] == 0


def test_rules_refuse_on_a_state_moved_out_of_memory_as_on_one_kept(
    new_store: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second find of a case whose state left memory, a second filing, a total past its
    bound: refused with the same messages, and nothing written."""
    bad = [
        *SPREAD,
        find("S-1"),
        cmd("file_case", "S-1", "2022-02-15", case_no="立3"),
        cmd("record_rectification", "S-1", "2022-02-15", fine_paid_yuan="9999999999.01"),
        cmd("close_out", "S-2", "2022-02-15"),
    ]
    text = jsonl(bad)
    whole = new_store()
    expected = cli("--db", whole, "record", stdin=text)
    moved = with_few_states_in_memory(monkeypatch)
    bounded = new_store()
    assert cli("--db", bounded, "record", stdin=text) == expected
    assert moved
    code, _, err = expected
    assert code == 1
    for told in (
        "第18行 find_site：编号 “S-1” 已存在，不能重复发现",
        "第19行 file_case：案件 S-1 已立案，一个案件只能立案一次",
        "第20行 record_rectification：已缴罚没款：案件 S-1 各次整改记录已合计 1000.00元",
        "第21行 close_out：案件 S-2 尚未整改到位（已发现），不能销号",
    ):
        assert told in err, err
    assert "全部未写入" in err
    ledger = LandLedger(bounded)
    assert ledger.fingerprint() == "0:" + "0" * 64
    ledger.close()


def test_a_session_keeps_the_same_states_for_its_next_batch(
    new_store: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session that records again keeps every state of its batch, in the order first
    touched, those moved out of memory read back: the same as a batch that kept them all."""
    commands = [parse_command(command) for command in SPREAD]
    a = LandLedger(new_store())
    a.record(commands, "t")
    moved = with_few_states_in_memory(monkeypatch)
    b = LandLedger(new_store())
    b.record(commands, "t")
    assert moved and list(b._cases) == list(a._cases)
    for ref in a._cases:
        assert (b._cases[ref].__dict__ | {"id": 0, "site": 0}) == (
            a._cases[ref].__dict__ | {"id": 0, "site": 0}
        )
        assert b._cases[ref] == b.load_case(b._cases[ref].id)
    a.close()
    b.close()


def same_exactly(a: Any, b: Any) -> bool:
    """Equal, and of the same types, down to a Decimal's exponent and a time's zone."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Case | BaseModel):
        return a.__dict__.keys() == b.__dict__.keys() and all(
            same_exactly(value, b.__dict__[name]) for name, value in a.__dict__.items()
        )
    return repr(a) == repr(b)


@pytest.mark.backends("sqlite")  # the encoding of a state, not the store
def test_a_state_moved_out_of_memory_comes_back_exactly(app: LandLedger) -> None:
    """Every field of a case and of its site, as recorded in this batch or read back from the
    store: Decimals keep their exponent (0 and 0.00), no coordinates stay None, tuples stay
    tuples; a value only an older store holds still comes back as it was."""
    zeros = {"cultivated_m2": "0", "basic_farmland_m2": "0.00", "eco_redline_m2": "0.0"}
    commands = [
        find("E-1", lon=Decimal("113.10"), lat=Decimal("36.2"), **zeros),
        find("E-2", violation_types=["占用耕地", "其他"], area_m2="1E+3"),
        cmd("correct_site", "E-2", "2022-02-11", cultivated_m2="0.000", reason="更正"),
        cmd("file_case", "E-2", "2022-02-11", case_no="立1"),
        cmd("decide_penalty", "E-2", "2022-02-11", decision_no="决1", fine_yuan="1"),
        cmd("record_rectification", "E-2", "2022-02-12", fine_paid_yuan="0.50"),
    ]
    app.record([parse_command(command) for command in commands], "t")
    recorded = list(app._cases.values())
    stored = [app.load_case(case.id) for case in recorded]  # its times in pydantic's own UTC
    zones = [type(case.site.__dict__["timestamp"].tzinfo) for case in (stored[0], recorded[0])]
    assert zones[0] is not zones[1]
    site = recorded[0].site
    odd = recorded[0].evolved({"site": unchecked(type(site), {**site.__dict__, "area_m2": 1.5})})
    states = [*recorded, *stored, odd]
    assert recorded[0].site.lat == Decimal("36.2") and recorded[1].site.lon is None
    exponents = [getattr(recorded[1], name).as_tuple().exponent for name in RECORD_TOTALS]
    assert sorted(exponents) == [-2, 0, 0, 0]  # 0.50 paid; Decimal(0), not 0.00, the others
    for case in states:
        back = states_module.decoded(states_module.encoded(case))
        assert back == case and same_exactly(back, case), case


def test_sites_numbered_past_the_states_kept_are_told_the_same(
    new_store: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """25 sites without a ref, most of their states out of memory while the next numbers are
    chosen: the same numbers, the first 20 named and the count, as with every state kept."""
    anonymous = {k: v for k, v in find("").items() if k != "ref"}
    text = jsonl([find("SD-2022-0003"), *[anonymous] * 25])
    whole = new_store()
    expected = cli("--db", whole, "record", stdin=text)
    assert expected[1].splitlines() == [
        "已记录 26 条命令（26 个事件），涉及 26 个案件，其中新发现 26 个",
        "新编号：" + "、".join(f"SD-2022-{n:04d}" for n in [1, 2, *range(4, 22)]) + " 等 25 个",
    ]
    moved = with_few_states_in_memory(monkeypatch)
    bounded = new_store()
    assert cli("--db", bounded, "record", stdin=text) == expected
    assert len(moved) > 20
    assert stats(bounded) == stats(whole)
    ledger = LandLedger(bounded)
    assert ledger.case("SD-2022-0026").state == "已发现"
    assert ledger.ledger_recorder.count_refs() == 26
    ledger.close()


@pytest.mark.backends("sqlite")  # the batch's lookups, not the store
def test_a_case_looked_up_for_a_refused_line_is_found_by_a_later_one(
    app: LandLedger, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ids of stored cases are kept only for the commands being checked: a case a refused
    line named is looked up again for the next line that names it, a part later."""
    assert cli("--db", db_url, "record", stdin=jsonl(GOOD[:2]))[0] == 0
    monkeypatch.setattr(ledger_module, "CHUNK", 1)
    text = jsonl([find("R-2"), cmd("stop", "R-2", "2022-02-11"), cmd("stop", "R-9", "2022-02-11")])
    code, _, err = cli("--db", db_url, "record", stdin=text)
    assert (code, err.splitlines()) == (
        1,
        [
            "错误：第1行 find_site：编号 “R-2” 已存在，不能重复发现",
            "错误：第3行 stop：编号 “R-9” 不存在",
            "错误：共 2 行有错误（全部未写入）",
        ],
    )
    code, out, _ = cli("--db", db_url, "record", stdin=jsonl([cmd("stop", "R-2", "2022-02-11")]))
    assert code == 0 and "涉及 1 个案件，其中新发现 0 个" in out
