"""Bad input, fuzzed (issue 15), beside tests/test_fuzz_cli.py (hostile values in valid command
lines, both backends) and tests/test_hostile_input.py (the red team's reproductions):

- `record`'s bytes: valid command lines, each maybe given a value DESIGN refuses (wrong types,
  NaN and Infinity, huge and tiny numbers, 1 MB and control-character texts, unpaired
  surrogates, impossible dates, unknown and repeated keys) and the file maybe given invalid
  UTF-8, a BOM, CRLF line ends, blank lines. What DESIGN refuses is refused, naming its line,
  with nothing written; a file of valid lines in any of those encodings is recorded.
- the command line: random argv from the real options and junk. Never a traceback; exit 1 (a
  Chinese reason) or 2 (misuse); nothing written but by a `record` or `import` that succeeds;
  a value DESIGN refuses for an option is never taken.
"""

import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fuzzing import (
    CHINESE,
    DECIDED_CASE,
    assert_refused,
    assert_within_design_bounds,
    fingerprint,
    fuzz_settings,
)
from helpers import cli, find, jsonl
from hypothesis import example, given
from hypothesis import strategies as st

from service.ledger import LandLedger


class Raw(str):
    """A JSON token written as it is: NaN, 1e400, a number no Python value spells so."""


def render(value: object) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, str) and any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        # An unpaired surrogate as its JSON escape: as bytes it is no UTF-8 (File.broken_utf8).
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False)


_new_refs = itertools.count(1)


def templates() -> dict[str, dict[str, Any]]:
    """A valid command of each kind on FZ-1 (found, filed and decided in set-up): each stays
    valid however often it is recorded."""
    return {
        "find_site": {**find(f"FZN-{next(_new_refs)}"), "lon": Raw("113.1"), "lat": Raw("36.2")},
        "stop": {"cmd": "stop", "ref": "FZ-1", "on": "2022-02-20", "order_no": "停1"},
        "refer": {
            "cmd": "refer",
            "ref": "FZ-1",
            "on": "2022-02-20",
            "agency": "公安",
            "persons": 1,
            "reason": "涉嫌犯罪",
        },
        "record_rectification": {
            "cmd": "record_rectification",
            "ref": "FZ-1",
            "on": "2022-02-20",
            "demolished_m2": "1",
            "fine_paid_yuan": Raw("1.5"),
            "note": "记录",
        },
        "flag": {
            "cmd": "flag",
            "ref": "FZ-1",
            "on": "2022-02-20",
            "kind": "典型案件",
            "note": "注",
        },
        "set_contact": {
            "cmd": "set_contact",
            "unit": "执法监察大队",
            "name": "王",
            "on": "2022-02-20",
        },
        "set_deadline": {"cmd": "set_deadline", "phase": "rectify", "due_on": "2022-04-15"},
        "correct_site": {
            "cmd": "correct_site",
            "ref": "FZ-1",
            "on": "2022-02-20",
            "area_m2": "900",
            "reason": "复测",
        },
        "order_rectification": {
            "cmd": "order_rectification",
            "ref": "FZ-1",
            "on": "2022-02-20",
            "measures": ["拆除复耕"],
            "due_on": "2022-03-01",
        },
    }


# Values DESIGN refuses, by the kind of field they are put in -----------------------------------

AMOUNT_REFUSED = [
    Raw("NaN"),
    Raw("Infinity"),
    Raw("-Infinity"),
    "NaN",
    "Infinity",
    Raw("1e400"),
    Raw("-1"),
    "-0.01",
    Raw("0.001"),
    Raw("1e-7"),
    Raw("1e-99999999"),
    "1_000",
    "abc",
    Raw("true"),
    Raw("[1]"),
    Raw('{"a": 1}'),
    Raw("9" * 30),
]
PAST_BOUND = {  # DESIGN's bounds: an area 100,000,000 ㎡, money 10,000,000,000 元
    "area_m2": Raw("100000000.01"),
    "demolished_m2": Raw("100000000.01"),
    "fine_paid_yuan": Raw("10000000000.01"),
}
PERSONS_REFUSED = [
    Raw("1.0"),
    Raw("1.5"),
    "2",
    Raw("true"),
    Raw("10001"),
    Raw("-1"),
    Raw("9223372036854775808"),
    Raw("NaN"),
    Raw("1e30"),
]
MEGABYTE = "地" * 1_000_000
TEXT_REFUSED = [
    "A\x00B",
    "\x1b[2J",
    "\x7f",
    "\x85",
    "\ud800",
    "\udc00尾",
    "厂" * 10_001,
    MEGABYTE,
    Raw("5"),
    Raw("true"),
    Raw('["a"]'),
    Raw('{"a": 1}'),
]
SHORT_TEXT_REFUSED = [*TEXT_REFUSED, "厂" * 2001, "第一行\n第二行", "制表\t符"]
DATE_REFUSED = [
    "2022-02-30",
    "2022-13-01",
    "0000-01-01",
    "2022-2-20",
    "2022-02-20T00:00",
    "２０２２-０２-２０",
    "",
    Raw("20220220"),
    Raw("null"),
    Raw("NaN"),
]
RULE_REFUSED_DATES = ["2099-01-01", "2022-01-01"]  # in the future; before the site was found
# Values a field may take or a rule may refuse: neither is asserted.
MAYBE = [Raw("0"), "0.01", Raw("1E+3"), "１０", "", "Ｔ－１", "\u2028", "\ufeff", "😀", Raw("null")]

AMOUNTS = {"area_m2", "demolished_m2", "fine_paid_yuan"}
SHORT_TEXTS = {"order_no", "name", "kind", "township", "ref", "phase"}
CAMPAIGN = {"set_contact", "set_deadline"}  # their `on` is optional: today when absent
LONG_TEXTS = {"note", "reason"}


@dataclass
class Line:
    text: str
    must_refuse: str = ""  # "parse": refused while reading it; "rule": by the rules after
    changed: bool = True  # False: a template as it is, which must be recorded


@st.composite
def lines(draw: st.DrawFn) -> Line:
    kind = draw(st.sampled_from(sorted(templates())))
    fields = dict(templates()[kind])
    mutation = draw(
        st.sampled_from(["none", "none", "value", "value", "value", "date", "key", "twice"])
    )
    must = ""
    if mutation == "value":
        name = draw(st.sampled_from([f for f in fields if f not in ("cmd", "on")]))
        refused: list[str] = (
            [*AMOUNT_REFUSED, PAST_BOUND[name]]
            if name in AMOUNTS
            else PERSONS_REFUSED
            if name == "persons"
            else TEXT_REFUSED
            if name in LONG_TEXTS
            else SHORT_TEXT_REFUSED
            if name in SHORT_TEXTS
            else DATE_REFUSED
            if name == "due_on"
            else []
        )
        take_refused = draw(st.booleans())
        if refused and take_refused:
            fields[name] = draw(st.sampled_from(refused))
            must = "parse"
        else:
            fields[name] = draw(st.sampled_from(MAYBE))
    elif mutation == "date":
        if draw(st.booleans()):
            fields["on"] = draw(st.sampled_from(DATE_REFUSED))
            # A campaign command's date is optional: blank or null may mean today.
            optional = kind in CAMPAIGN and fields["on"] in ("", "null")
            must = "" if optional else "parse"
        else:
            fields["on"] = draw(st.sampled_from(RULE_REFUSED_DATES))
            # In the future; or before the case's site was found (a new site has no such date).
            early = kind not in ("find_site", *CAMPAIGN)
            must = "rule" if fields["on"] > "2030" or early else ""
    elif mutation == "key":
        fields[draw(st.sampled_from(["colour", "Ref", "area", "cmd "]))] = "x"
        must = "parse"
    body = ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {render(v)}" for k, v in fields.items())
    if mutation == "twice":
        name = draw(st.sampled_from(list(fields)))
        body += f", {json.dumps(name, ensure_ascii=False)}: {render(fields[name])}"
        must = "parse"
    return Line("{" + body + "}", must, changed=mutation != "none")


@dataclass
class File:
    lines: list[Line]
    bom: bool
    crlf: bool
    blank_lines: bool
    broken_utf8: str  # "", "byte" (\xff inside a text), "surrogate" (one encoded in the bytes)

    def data(self) -> bytes:
        texts = []
        for line in self.lines:
            texts.append(line.text)
            if self.blank_lines:
                texts.append("  ")
        end = "\r\n" if self.crlf else "\n"
        data = end.join(texts).encode("utf-8", "surrogatepass") + end.encode()
        if self.bom:
            data = b"\xef\xbb\xbf" + data
        if self.broken_utf8 == "byte":
            data = data.replace(b'"FZ-1"', b'"FZ-1\xff"', 1)
        elif self.broken_utf8 == "surrogate":
            data = data.replace(b'"FZ-1"', b'"FZ-1\xed\xa0\x80"', 1)
        return data

    def number_of(self, index: int) -> int:
        return index * 2 + 1 if self.blank_lines else index + 1


files = st.builds(
    File,
    lines=st.lists(lines(), min_size=1, max_size=3),
    bom=st.booleans(),
    crlf=st.booleans(),
    blank_lines=st.booleans(),
    broken_utf8=st.sampled_from(["", "", "", "byte", "surrogate"]),
)
VALID = Line(json.dumps(templates()["stop"], ensure_ascii=False), changed=False)


@pytest.mark.backends("sqlite")  # parsing and validation; the CLI fuzz of test_fuzz_cli runs both
def test_record_refuses_what_design_refuses_and_records_valid_lines_in_any_encoding(
    db_url: str, tmp_path: Path
) -> None:
    setup = tmp_path / "setup.jsonl"
    setup.write_text(jsonl(DECIDED_CASE), encoding="utf-8")
    assert cli("--db", db_url, "record", "--file", str(setup))[0] == 0
    path = tmp_path / "fuzz.jsonl"

    @fuzz_settings(120)
    @given(files)
    @example(File([VALID], bom=True, crlf=True, blank_lines=True, broken_utf8=""))
    @example(File([VALID], bom=False, crlf=False, blank_lines=False, broken_utf8="surrogate"))
    def probe(file: File) -> None:
        path.write_bytes(file.data())
        before = fingerprint(db_url)
        code, out, err = cli("--db", db_url, "record", "--file", str(path))
        assert "Traceback" not in err, err
        parse_refused = [i for i, line in enumerate(file.lines) if line.must_refuse == "parse"]
        if file.broken_utf8 and any('"FZ-1"' in line.text for line in file.lines):
            assert_refused(code, out, err)
            assert "不是 UTF-8 编码的文本" in err, err
        elif parse_refused:
            assert_refused(code, out, err)
            named = [int(n) for n in re.findall(r"第(\d+)行", err)]
            assert named and min(named) <= file.number_of(parse_refused[0]), err
        elif any(line.must_refuse for line in file.lines):
            assert_refused(code, out, err)
        elif not file.broken_utf8 and not any(line.changed for line in file.lines):
            assert code == 0, err  # valid lines, whatever the BOM, line ends and blank lines
        if code == 0:
            assert out.startswith("已记录") and err == "", (out, err)
            assert_within_design_bounds(db_url)
        else:
            assert_refused(code, out, err)
            assert fingerprint(db_url) == before

    probe()
    code, out, err = cli("--db", db_url, "stats", "--json")
    assert code == 0 and CHINESE.search(out), err


# The command line -------------------------------------------------------------------------

BAD_DATES = ["2022-02-30", "2022-13-01", "20220228", "0000-01-01", "", "今天", "2022-02-28T00:00"]
BAD_MOMENTS = ["0001-01-01T00:00:00+08:00", "2022-02-30T00:00", "yesterday", "", "9" * 30]
BAD_FINGERPRINTS = ["", "1:", ":abc", "x:" + "0" * 64, "-1:" + "0" * 64, "1:" + "g" * 64]
# Tokens no command line takes where they are put in; "--" (the end of options) may be harmless.
JUNK = ["--nope", "-x", "", "--", "——db", "--json=1", "record", "厂", "\x1b[2J", "-", "--as-of"]


COMMAND_NAMES = [
    *("record", "stats", "history", "alerts", "rebuild", "verify", "export", "import"),
    *("backup", "keygen", "tui", "demo", "frobnicate", ""),
]


@st.composite
def argvs(draw: st.DrawFn) -> tuple[list[str], bool]:
    """(argv, must be refused): the real options with good, bad and junk values, in any order.
    Slots: DB, FILE (a command file), SHEET, OUT, BACKUP are filled in by the test."""
    refused = False

    def value(good: list[str], bad: list[str]) -> str:
        nonlocal refused
        if draw(st.booleans()):
            return draw(st.sampled_from(good))
        refused = True
        return draw(st.sampled_from(bad))

    argv: list[str] = []
    if draw(st.integers(0, 4)):
        argv += ["--db", draw(st.sampled_from(["DB", "DB", "DB", "MISSING_DB", "OTHER_DB", "DIR"]))]
    if draw(st.booleans()):
        argv += ["--actor", draw(st.sampled_from(["staff-1", "", "张三", "a\x1b[2J", "x" * 3000]))]
    if not draw(st.integers(0, 9)):
        argv += ["--campaign", draw(st.sampled_from(["MISSING_TOML", "JUNK_TOML"]))]
    command = draw(st.sampled_from(COMMAND_NAMES))
    if command:
        argv.append(command)
    if command == "record":
        argv += ["--file", draw(st.sampled_from(["FILE", "JUNK_FILE", "MISSING", "DIR"]))]
    elif command == "stats":  # each option once: argparse keeps the last of a repeated one
        for option in draw(
            st.lists(st.sampled_from(["--json", "as-of", "known-at", "by"]), unique=True)
        ):
            if option == "as-of":
                argv += ["--as-of", value(["2022-02-28"], BAD_DATES)]
            elif option == "known-at":
                argv += ["--known-at", value(["2022-02-28T18:00", "2099-01-01"], BAD_MOMENTS)]
            elif option == "by":
                argv += ["--by", value(["township", "unit", "month"], ["village", "", "Township"])]
            else:
                argv.append(option)
    elif command == "history":
        argv.append(value(["FZ-1", "ＦＺ－１", "FZ-1\u200b"], ["NO-SUCH", "", "\x00", "厂" * 3000]))
        if draw(st.booleans()):
            argv.append("--unmasked")
    elif command in ("alerts",) and draw(st.booleans()):
        argv.append("--json")
    elif command == "verify" and draw(st.booleans()):
        argv += ["--fingerprint", value(["FINGERPRINT"], BAD_FINGERPRINTS)]
    elif command == "export":
        kind = value(["table2", "ledger", "events", "template"], ["table3", "", "LEDGER"])
        argv += [kind, "--out", draw(st.sampled_from(["OUT", "OUT", "NO_FOLDER_OUT", "DIR"]))]
        if draw(st.booleans()):
            argv += ["--as-of", value(["2022-03-31"], BAD_DATES)]
    elif command == "import":
        argv.append(draw(st.sampled_from(["SHEET", "FILE", "MISSING", "DIR"])))
        if draw(st.booleans()):
            argv.append("--dry-run")
    elif command == "backup":
        argv.append(draw(st.sampled_from(["BACKUP", "DIR", "NO_FOLDER_OUT", "DB"])))
    elif command == "demo":  # only counts DESIGN refuses: a valid one records a campaign
        argv += ["--cases", draw(st.sampled_from(["0", "-1", "abc", "1000001", "1e3", ""]))]
        refused = True
    elif command == "tui" and draw(st.booleans()):
        argv += ["--as-of", value(["2022-03-20"], BAD_DATES)]
    for _ in range(draw(st.integers(0, 2)) if draw(st.integers(0, 3)) == 0 else 0):
        junk = draw(st.sampled_from(JUNK))
        argv.insert(draw(st.integers(0, len(argv))), junk)
        refused = refused or junk != "--"
    if command in ("frobnicate", ""):
        refused = command == "frobnicate"
    return argv, refused


WRITES = {"record", "import"}


@pytest.mark.backends("sqlite")  # the command line; the store is a fixture
def test_any_command_line_exits_cleanly_and_writes_only_when_it_succeeds(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No command reaches the user's own store, whatever the environment says, nor writes a
    # file where the tests run (a junk token taken for a path).
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    for name in ("LANDLEDGER_DB", "LANDLEDGER_ACTOR", "LANDLEDGER_CAMPAIGN"):
        monkeypatch.delenv(name, raising=False)
    command_file = tmp_path / "commands.jsonl"
    command_file.write_text(jsonl([find("FZ-1")]), encoding="utf-8")
    assert cli("--db", db_url, "record", "--file", str(command_file))[0] == 0
    app = LandLedger(db_url)
    known = app.fingerprint()
    app.close()
    (tmp_path / "junk.jsonl").write_bytes(b"\xff\xfe junk\n")
    (tmp_path / "junk.toml").write_text("name = [\n", encoding="utf-8")
    (tmp_path / "other.db").write_bytes(b"SQLite format 3\x00" + bytes(200))
    sheet = tmp_path / "sheet.xlsx"
    code, _, err = cli("--db", db_url, "export", "ledger", "--out", str(sheet))
    assert code == 0, err
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    slots = {
        "DB": db_url,
        "MISSING_DB": str(tmp_path / "new" / "fresh.db"),
        "OTHER_DB": str(tmp_path / "other.db"),
        "DIR": str(tmp_path),
        "FILE": str(command_file),
        "JUNK_FILE": str(tmp_path / "junk.jsonl"),
        "MISSING": str(tmp_path / "missing.jsonl"),
        "MISSING_TOML": str(tmp_path / "missing.toml"),
        "JUNK_TOML": str(tmp_path / "junk.toml"),
        "SHEET": str(sheet),
        "OUT": str(out_dir / "out.xlsx"),
        "NO_FOLDER_OUT": str(tmp_path / "no-folder" / "out.xlsx"),
        "BACKUP": str(out_dir / "backup.db"),
        "FINGERPRINT": known,
    }

    def events() -> int:
        store = LandLedger(db_url)
        try:
            return store.ledger_recorder.count_events()
        finally:
            store.close()

    @fuzz_settings(80)
    @given(argvs())
    @example((["--db", "DB", "stats", "--as-of", "2022-02-30"], True))
    @example((["--db", "DB", "--actor", "a\x1b[2J", "record", "--file", "FILE"], True))
    @example((["--db", "DB", "backup", "DB"], True))
    @example((["--db", "OTHER_DB", "stats"], True))
    @example((["--db", "DB", "verify", "--fingerprint", ""], True))  # was taken as none given
    def probe(case: tuple[list[str], bool]) -> None:
        argv, must_refuse = case
        argv = [slots.get(arg, arg) for arg in argv]
        for leftover in out_dir.iterdir():
            leftover.unlink()
        before = events()
        code, out, err = cli(*argv, stdin="")
        assert "Traceback" not in err, err
        assert code in (0, 1, 2), (argv, code, err)
        if code == 2:
            assert "命令行用法错误" in err, err
        elif code == 1:
            # after any 提示 (a --campaign file ignored by a store that has one)
            told = err.split("\n提示：")[-1] if err.startswith("提示：") else err
            assert "错误：" in told and CHINESE.search(err), (argv, err)
            assert err.startswith(("错误：", "提示：")), (argv, err)
        if must_refuse:
            assert code != 0, (argv, out)
        writes = code == 0 and db_url in argv and WRITES & set(argv) and "--dry-run" not in argv
        if not writes:
            assert events() == before, (argv, code, err)
        if code != 0:
            assert not list(out_dir.iterdir()), (argv, err)  # no partial file left

    probe()


@pytest.mark.backends("sqlite")  # a field's validation
@pytest.mark.parametrize("ref", ["\x85", "\x1c", "FZ-1\x1f", " \x1e"])
def test_a_ref_of_control_characters_is_refused_not_trimmed_away(
    db_url: str, tmp_path: Path, ref: str
) -> None:
    # str.strip() takes these for spaces: the ref became blank (a generated ref was recorded in
    # its place) or another case's ref (FZ-1).
    path = tmp_path / "c.jsonl"
    path.write_text(jsonl([find("FZ-1"), find(ref)]), encoding="utf-8")
    code, out, err = cli("--db", db_url, "record", "--file", str(path))
    assert_refused(code, out, err)
    assert "第2行 find_site：编号：" in err and "含有控制字符" in err, err
