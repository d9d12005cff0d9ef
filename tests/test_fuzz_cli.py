"""The red team's probes as a property, on both backends: any file of command lines either
records (exit 0) and the store still answers everything, or is refused (exit 1) with a Chinese
message on standard error and nothing written. Bounded in time: a few dozen examples."""

import json
import re
from collections.abc import Callable
from pathlib import Path

from fuzzing import DECIDED_CASE, fuzz_settings
from helpers import cli, find, jsonl
from hypothesis import example, given
from hypothesis import strategies as st

from domain.commands import COMMANDS
from service.ledger import LandLedger

CHINESE = re.compile(r"[\u4e00-\u9fff]")
FIELDS = sorted({f for model in COMMANDS.values() for f in model.model_fields} | {"area_mu"})
EXPORTS = ("table2", "ledger", "problems", "contacts", "events", "template")


class Raw(str):
    """A JSON token written as it is (a number no Python value spells the same way)."""


RAW_NUMBERS = [
    "9223372036854775808",
    "18446744073709551616",
    "1e30",
    "1e-7",
    "0.0000005",
    "1e-99999999",
    "1e99999999",
    "-0",
    "-1",
    "0.01",
    "10000",
    "10001",
    "100000000",
    "100000000.01",
    "10000000000",
    "9999999999999.99",
    "9" * 400,
    "1E+3",
]
TEXTS = [
    "",
    " ",
    "1_000",
    "Infinity",
    "NaN",
    "T-0001",
    "T-0001\u200b",
    "Ｔ－０００１",
    "A\x00B",
    "\x1b[2J",
    "\ud800",
    "第一行\n第二行",
    "厂" * 2001,
    "2022-02-10",
    "2022-02-30",
    "0001-01-01",
    "9999-12-31",
    "苏店镇",
    "苏店自然资源所",
    "公安",
    "占用耕地",
    "巡查",
]
scalars = st.one_of(
    st.sampled_from(RAW_NUMBERS).map(Raw),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(TEXTS),
    st.text(max_size=12),
    st.booleans() | st.none(),
)
numbers = st.sampled_from(RAW_NUMBERS).map(Raw) | st.integers(-(2**70), 2**70)
values = st.one_of(numbers, scalars, scalars, st.lists(scalars, max_size=3))


def render(value: object) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {render(v)}" for k, v in value.items()) + "}"
    return json.dumps(value, ensure_ascii=False)


# A valid line of each command on the fuzz store's case FZ-1 (filed and decided in set-up): a
# few of its fields are then replaced by hostile values, so the values reach every check.
TEMPLATES: dict[str, dict[str, object]] = {
    "find_site": find("FZ-2", note="备注", lon=Raw("113.1"), lat=Raw("36.2")),
    "correct_site": {"area_m2": "900", "reason": "复测"},
    "stop": {"order_no": "停1", "outcome": "停工"},
    "refer": {"agency": "公安", "persons": 1, "doc_no": "移1", "reason": "涉嫌犯罪"},
    "order_rectification": {"measures": ["拆除复耕"], "due_on": "2022-03-01"},
    "record_rectification": {
        "demolished_m2": "1",
        "restored_m2": "1",
        "fine_paid_yuan": "1",
        "permit_doc_no": "补1",
        "permit_area_m2": "1",
        "note": "记录",
    },
    "flag": {"kind": "典型案件", "note": "注"},
    "set_contact": {"unit": "执法监察大队", "name": "王", "mobile": "13800000000"},
}


@st.composite
def lines(draw: st.DrawFn) -> str:
    """A valid command with a few fields replaced by hostile values; or junk."""
    kind = draw(st.sampled_from([*TEMPLATES, "other", "junk"]))
    if kind == "junk":
        return draw(st.text(max_size=40)).replace("\n", " ")
    if kind == "other":
        fields: dict[str, object] = {"cmd": draw(st.sampled_from([*COMMANDS, "halt"]))}
    elif kind == "find_site":
        fields = dict(TEMPLATES[kind])
        fields["ref"] = draw(st.sampled_from(["FZ-2", "FZ-3", "FZ-1\u200b", "ＦＺ－３"]))
    elif kind == "set_contact":
        fields = {"cmd": kind, "on": "2022-02-20", **TEMPLATES[kind]}
    else:
        fields = {"cmd": kind, "ref": "FZ-1", "on": "2022-02-20", **TEMPLATES[kind]}
    own = st.sampled_from([f for f in fields if f != "cmd"] or FIELDS)
    names = st.one_of(own, own, own, st.sampled_from(FIELDS))
    for name in draw(st.lists(names, min_size=1, max_size=1)):
        fields[name] = draw(values)
    return "{" + ", ".join(f"{json.dumps(k)}: {render(v)}" for k, v in fields.items()) + "}"


REFER = '{"cmd": "refer", "ref": "FZ-1", "on": "2022-02-20", "agency": "公安", "persons": %s}'
RECORD = '{"cmd": "record_rectification", "ref": "FZ-1", "on": "2022-02-20", "fine_paid_yuan": %s}'
FIND = json.dumps(find("FZ-1"), ensure_ascii=False)


def test_any_command_file_is_recorded_whole_or_refused_in_chinese(
    new_store: Callable[[], str], tmp_path: Path
) -> None:
    db = new_store()
    path = tmp_path / "fuzz.jsonl"
    path.write_text(jsonl(DECIDED_CASE), encoding="utf-8")
    assert cli("--db", db, "record", "--file", str(path))[0] == 0

    def fingerprint() -> str:
        app = LandLedger(db)
        try:
            return app.fingerprint()
        finally:
            app.close()

    @fuzz_settings(25)
    @given(st.lists(lines(), min_size=1, max_size=2))
    # The issue's own probes, tried first every run.
    @example([REFER % "9223372036854775808"])
    @example([REFER % "1e30"])
    @example([REFER.replace('"FZ-1"', '"FZ-1\\u0000"') % "1"])
    @example([RECORD % "9999999999999.99", RECORD % '"1"'])
    @example([RECORD % "1e-99999999"])
    @example([FIND.replace('"FZ-1"', '"ＦＺ－１"')])
    def probe(file_lines: list[str]) -> None:
        path.write_text("\n".join(file_lines) + "\n", encoding="utf-8", errors="surrogatepass")
        before = fingerprint()
        code, out, err = cli("--db", db, "record", "--file", str(path))
        assert "Traceback" not in err
        if code == 0:
            assert out.startswith("已记录") and err == ""
            for command in (["stats", "--json"], ["alerts"], ["history", "FZ-1"]):
                result = cli("--db", db, *command)
                assert result[0] == 0, (command, result[2])
        else:
            assert code == 1 and out == "", (code, err)
            assert err.startswith("错误：") and CHINESE.search(err), err
            assert fingerprint() == before

    probe()
    for command in (["rebuild"], ["stats", "--json", "--as-of", "2022-03-31"]):
        code, _, err = cli("--db", db, *command)
        assert code == 0, err
    for kind in EXPORTS:
        out_path = tmp_path / f"out-{kind}.{'jsonl' if kind == 'events' else 'xlsx'}"
        code, _, err = cli("--db", db, "export", kind, "--out", str(out_path))
        assert code == 0, f"{kind}: {err}"
