"""The red team's probes as a property, on both backends: any file of command lines either
records (exit 0) and the store still answers everything, or is refused (exit 1) with a Chinese
message on standard error and nothing written. Bounded in time: a few dozen examples."""

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from helpers import cli, find, jsonl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.commands import COMMANDS
from domain.service import LandLedger

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
values = st.recursive(
    st.one_of(
        st.sampled_from(RAW_NUMBERS).map(Raw),
        st.sampled_from(TEXTS),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.booleans(),
        st.none(),
        st.text(max_size=12),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELDS), inner),
    max_leaves=6,
)


def render(value: object) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {render(v)}" for k, v in value.items()) + "}"
    return json.dumps(value, ensure_ascii=False)


@st.composite
def lines(draw: st.DrawFn) -> str:
    """A command mostly valid, with a few fields replaced by hostile values; or junk."""
    kind = draw(st.sampled_from(["site", "other", "junk"]))
    if kind == "junk":
        return draw(st.text(max_size=40)).replace("\n", " ")
    if kind == "site":
        fields: dict[str, object] = dict(find(draw(st.sampled_from(["FZ-2", "FZ-3", "T-0001"]))))
    else:
        fields = {
            "cmd": draw(st.sampled_from([*COMMANDS, "halt"])),
            "ref": draw(st.sampled_from(["FZ-1", "FZ-1\u200b", "ＦＺ－１", "NONE"])),
            "on": draw(st.sampled_from(["2022-02-11", "2022-02-30", "2099-01-01"])),
        }
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        fields[name] = draw(values)
    return "{" + ", ".join(f"{json.dumps(k)}: {render(v)}" for k, v in fields.items()) + "}"


def test_any_command_file_is_recorded_whole_or_refused_in_chinese(
    new_store: Callable[[], str], tmp_path: Path
) -> None:
    db = new_store()
    path = tmp_path / "fuzz.jsonl"
    path.write_text(jsonl([find("FZ-1")]), encoding="utf-8")
    assert cli("--db", db, "record", "--file", str(path))[0] == 0

    def fingerprint() -> str:
        app = LandLedger(db)
        try:
            return app.fingerprint()
        finally:
            app.close()

    @settings(
        max_examples=int(os.environ.get("LANDLEDGER_FUZZ_EXAMPLES", "25")),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(lines(), min_size=1, max_size=3))
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
        out_path = tmp_path / f"out-{kind}"
        code, _, err = cli("--db", db, "export", kind, "--out", str(out_path))
        assert code == 0, f"{kind}: {err}"
